#!/usr/bin/env python3
"""Login helper of benches/run.sh (standard library only).

  login.py session BASE USER PASSWORD   -> prints the Cookie header of a signed-in session
  login.py load BASE USER SECONDS N     -> N concurrent login attempts (wrong password,
                                           so every one runs argon2) for SECONDS; prints
                                           "attempts answered"
"""
import http.client
import re
import sys
import threading
import time
import urllib.parse


def conn_for(base):
    u = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30)


def cookies_of(resp, jar):
    for name, value in resp.getheaders():
        if name.lower() == "set-cookie":
            pair = value.split(";", 1)[0]
            k, _, v = pair.partition("=")
            jar[k.strip()] = v.strip()


def cookie_header(jar):
    return "; ".join(f"{k}={v}" for k, v in jar.items())


def login_form(conn, jar):
    conn.request("GET", "/login", headers={"Cookie": cookie_header(jar)})
    resp = conn.getresponse()
    body = resp.read().decode()
    cookies_of(resp, jar)
    m = re.search(r'name="csrf_token" value="([^"]+)"', body)
    if not m:
        raise SystemExit(f"no CSRF token on /login (status {resp.status})")
    return m.group(1)


def post_login(conn, base, jar, csrf, user, password):
    form = urllib.parse.urlencode(
        {"csrf_token": csrf, "username": user, "password": password, "next": "/"}
    )
    conn.request(
        "POST",
        "/login",
        body=form,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": cookie_header(jar),
            "Origin": base,
        },
    )
    resp = conn.getresponse()
    resp.read()
    cookies_of(resp, jar)
    return resp.status


def session(base, user, password):
    conn, jar = conn_for(base), {}
    csrf = login_form(conn, jar)
    status = post_login(conn, base, jar, csrf, user, password)
    if status != 303:
        raise SystemExit(f"login failed with status {status}")
    print(cookie_header(jar))


def load(base, user, seconds, n):
    deadline = time.monotonic() + seconds
    answered = [0] * n

    def worker(i):
        conn, jar = conn_for(base), {}
        csrf = login_form(conn, jar)
        while time.monotonic() < deadline:
            post_login(conn, base, jar, csrf, user, "wrong-password-for-load")
            answered[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(sum(answered))


if __name__ == "__main__":
    if sys.argv[1] == "session":
        session(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        load(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
