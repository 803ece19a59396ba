"""Media jobs run by worker tasks: recording a live stream to files, pushing it to another server."""
