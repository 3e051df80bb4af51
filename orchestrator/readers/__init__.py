"""The trace readers: what people read about runs after the fact, from the stored trace.

The summary and its report (`baton trace`, `/baton trace`), the timeline, the stats and
their chart, the JSON export and chain checks, and finding runs. They read; they never
change a run. The engine and the notifiers write."""
