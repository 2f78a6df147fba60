#!/usr/bin/env python3
"""Asks a Flink cluster's REST API (the JobManager's, on loopback) for what scripts/cluster-test waits for.

Usage: rest.py PORT COMMAND ARGS...

  wait-up TIMEOUT                       the REST API answers
  wait-taskmanagers N TIMEOUT           N TaskManagers are registered; prints their ids
  wait-replaced OLD TIMEOUT              exactly one TaskManager is registered and it is not
                                        OLD (a TaskManager id); prints its id
  wait-state JOB STATES TIMEOUT         the job reaches one of STATES (comma-separated,
                                        e.g. FINISHED); fails at once in another terminal state
  wait-running JOB TIMEOUT              the job is RUNNING and all its tasks are RUNNING
  wait-files DIR N TIMEOUT              DIR holds at least N files (not REST; used to wait
                                        for committed output)
  restored JOB                          prints the id of the checkpoint the job was last
                                        restored from, and completed checkpoints
  task-managers JOB                     prints the ids of the TaskManagers running the job
  root-exception JOB                    prints the job's root exception (and history)
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

TERMINAL = {"FINISHED", "FAILED", "CANCELED", "SUSPENDED"}


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.load(r)


def poll(timeout, what, check):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            done, last = check()
            if done:
                return last
        except (urllib.error.URLError, ConnectionError, OSError) as e:
            last = f"REST API not answering: {e}"
        time.sleep(0.5)
    sys.exit(f"timed out after {timeout} s waiting for {what} (last seen: {last})")


def main():
    port, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if cmd == "wait-up":
        poll(float(args[0]), "the REST API", lambda: (bool(get(port, "/config")), "up"))
    elif cmd == "wait-taskmanagers":
        n = int(args[0])

        def check():
            tms = get(port, "/taskmanagers")["taskmanagers"]
            return len(tms) >= n, " ".join(tm["id"] for tm in tms)

        print(poll(float(args[1]), f"{n} TaskManagers", check))
    elif cmd == "wait-replaced":
        old = args[0]

        def check():
            ids = [tm["id"] for tm in get(port, "/taskmanagers")["taskmanagers"]]
            return len(ids) == 1 and ids[0] != old, " ".join(ids)

        print(poll(float(args[1]), f"a single TaskManager other than {old}", check))
    elif cmd == "wait-state":
        job, states = args[0], set(args[1].split(","))

        def check():
            state = get(port, f"/jobs/{job}")["state"]
            if state not in states and state in TERMINAL:
                exc = get(port, f"/jobs/{job}/exceptions").get("root-exception")
                sys.exit(f"job {job} is {state}, not {args[1]}: {exc}")
            return state in states, state

        print(poll(float(args[2]), f"job {job} to be {args[1]}", check))
    elif cmd == "wait-running":
        job = args[0]

        def check():
            info = get(port, f"/jobs/{job}")
            if info["state"] in TERMINAL:
                sys.exit(f"job {job} is {info['state']}")
            tasks = [v["status"] for v in info["vertices"]]
            return info["state"] == "RUNNING" and all(s == "RUNNING" for s in tasks), (
                f"{info['state']} {tasks}"
            )

        poll(float(args[1]), f"job {job} to run", check)
    elif cmd == "wait-files":
        directory, n = args[0], int(args[1])
        poll(
            float(args[2]),
            f"{n} files in {directory}",
            lambda: (len(os.listdir(directory)) >= n, f"{len(os.listdir(directory))} files"),
        )
    elif cmd == "restored":
        counts = get(port, f"/jobs/{args[0]}/checkpoints")
        restored = (counts.get("latest") or {}).get("restored") or {}
        print(restored.get("id", "none"), counts["counts"]["completed"])
    elif cmd == "task-managers":
        job = args[0]
        ids = set()
        for v in get(port, f"/jobs/{job}")["vertices"]:
            for tm in get(port, f"/jobs/{job}/vertices/{v['id']}/taskmanagers")["taskmanagers"]:
                ids.add(tm.get("taskmanager-id") or tm.get("resource-id"))
        print(" ".join(sorted(ids)))
    elif cmd == "root-exception":
        exc = get(port, f"/jobs/{args[0]}/exceptions")
        print(exc.get("root-exception") or "")
        for entry in exc.get("exceptionHistory", {}).get("entries", []):
            print(entry.get("stacktrace", ""))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
