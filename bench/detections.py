#!/usr/bin/env python3
"""Load generator of bench/detections.sh (standard library only).

  detections.py batch  BASE KEY SUBJECTS BATCHES BATCH_SIZE CONNECTIONS
  detections.py mqtt-files DIR KEY SUBJECTS FILES PER_FILE
  detections.py load BASE KEY SUBJECTS COUNT BATCH_SIZE CONNECTIONS SPREAD_SECS
  detections.py latency BASE TOKEN PATH REQUESTS

Prints one JSON line with what it measured. `batch` builds its bodies before the clock
starts; `load` (volume for the dashboards: COUNT detections whose timestamps run in order over the
last SPREAD_SECS, as devices report them, sent in that order) builds each body as it goes; `latency` times REQUESTS sequential GETs on one connection.
"""
import http.client, json, os, sys, threading, time, uuid
from datetime import datetime, timedelta, timezone

LABELS = ["neutral", "happy", "sad", "stress", "fatigue", "angry", "surprised", "fear"]


def stamp(at):
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def body(run, start, n, subjects, timeline=None):
    """n detections numbered from `start`, all stamped now, or at their place on `timeline`
    (first, step): the i-th detection of a run at first + i * step, in order."""
    fixed = stamp(datetime.now(timezone.utc))
    return [{"client_id": f"{run}-{start + i}", "subject": f"B-{(start + i) % subjects:05d}",
             "label": LABELS[(start + i) % len(LABELS)], "confidence": 0.3 + ((start + i) % 7) / 10,
             "timestamp": stamp(timeline[0] + (start + i) * timeline[1]) if timeline else fixed}
            for i in range(n)]


def post(conn, key, path, payload):
    conn.request("POST", path, payload, {"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    response = conn.getresponse()
    data = response.read()
    return response.status, data


def batch(base, key, subjects, batches, size, connections):
    host = base.split("//")[1]
    run = uuid.uuid4().hex[:8]
    bodies = [json.dumps({"detections": body(run, b * size, size, subjects)}).encode() for b in range(batches)]
    accepted, errors, lock = [0], [0], threading.Lock()
    todo = list(range(batches))

    def worker():
        conn = http.client.HTTPConnection(host, timeout=120)
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            status, data = post(conn, key, "/api/v1/detections/batch", bodies[i])
            with lock:
                if status == 200:
                    accepted[0] += json.loads(data)["accepted"]
                else:
                    errors[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    print(json.dumps({"mode": "batch", "accepted": accepted[0], "errors": errors[0], "seconds": round(elapsed, 2),
                      "per_second": round(accepted[0] / elapsed)}))


def load(base, key, subjects, count, size, connections, spread_secs):
    host = base.split("//")[1]
    run = uuid.uuid4().hex[:8]
    accepted, errors, lock = [0], [0], threading.Lock()
    # Oldest first, ending now: the tables grow at their ends as they do in service.
    timeline = (datetime.now(timezone.utc) - timedelta(seconds=spread_secs), timedelta(seconds=spread_secs / count))
    todo = list(range(0, count, size))
    todo.reverse()

    def worker():
        conn = http.client.HTTPConnection(host, timeout=120)
        while True:
            with lock:
                if not todo:
                    return
                start = todo.pop()
            payload = json.dumps({"detections": body(run, start, min(size, count - start), subjects, timeline)})
            status, data = post(conn, key, "/api/v1/detections/batch", payload.encode())
            with lock:
                if status == 200:
                    accepted[0] += json.loads(data)["accepted"]
                else:
                    errors[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    print(json.dumps({"mode": "load", "accepted": accepted[0], "errors": errors[0], "seconds": round(elapsed, 2),
                      "per_second": round(accepted[0] / elapsed)}))


def latency(base, token, path, requests):
    conn = http.client.HTTPConnection(base.split("//")[1], timeout=60)
    times = []
    for _ in range(requests):
        t = time.perf_counter()
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        response.read()
        times.append((time.perf_counter() - t) * 1000)
        if response.status != 200:
            sys.exit(f"GET {path}: {response.status}")
    times.sort()
    print(json.dumps({"path": path, "requests": requests, "p50_ms": round(times[len(times) // 2], 2),
                      "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2)}))


def mqtt_files(directory, key, subjects, files, per_file):
    run = uuid.uuid4().hex[:8]
    for f in range(files):
        with open(os.path.join(directory, f"m{f:04d}.json"), "w") as out:
            json.dump({"key": key, "detections": body(run, f * per_file, per_file, subjects)}, out)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "batch":
        batch(args[0], args[1], int(args[2]), int(args[3]), int(args[4]), int(args[5]))
    elif mode == "load":
        load(args[0], args[1], int(args[2]), int(args[3]), int(args[4]), int(args[5]), int(args[6]))
    elif mode == "latency":
        latency(args[0], args[1], args[2], int(args[3]))
    else:
        mqtt_files(args[0], args[1], int(args[2]), int(args[3]), int(args[4]))
