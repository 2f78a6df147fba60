"""Reading benchmark result lines: one JSON object per line, each possibly behind a tag
(`V2RUN `, `LARGEJOB `) that the benchmark prints so that its lines stand out in a log."""
import json
import sys


def read_runs(path, tag):
    """The JSON objects of the lines of `path`, `tag` stripped where a line starts with it;
    exits naming `path` when there are none."""
    runs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith(tag):
                line = line[len(tag):]
            if line:
                runs.append(json.loads(line))
    if not runs:
        sys.exit("no runs in " + path)
    return runs
