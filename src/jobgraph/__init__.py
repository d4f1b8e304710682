"""jobgraph: run a graph of jobs: functions, coroutines and shell commands."""
