"""Where job bodies run: the event loop, threads, subprocesses, worker processes."""
