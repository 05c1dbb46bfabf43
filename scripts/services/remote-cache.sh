#!/usr/bin/env bash
# A Bazel-protocol HTTP remote cache on 127.0.0.1, served by Debian's nginx with WebDAV PUT:
# GET/PUT/HEAD {url}/ac/<key> and {url}/cas/<sha256>, stored as plain files under DIR/data.
# Used by the tests, the benchmark and .ci/run; a class would run the same config on a real host.
#
#   scripts/services/remote-cache.sh start DIR PORT   # prints the URL once it answers
#   scripts/services/remote-cache.sh stop DIR         # stops it (no-op when not running)
set -euo pipefail
cmd=${1:?usage: remote-cache.sh start DIR PORT | stop DIR}
dir=${2:?the state folder}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

case "$cmd" in
start)
  port=${3:?the port}
  [ -x "$NGINX" ] || { echo "remote-cache.sh: nginx is not installed (bash scripts/setup.sh installs it)" >&2; exit 3; }
  mkdir -p "$dir/data" "$dir/tmp"
  user_line=""
  [ "$(id -u)" = 0 ] && user_line="user root root;"
  cat > "$dir/nginx.conf" <<CONF
$user_line
daemon on;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  server {
    listen 127.0.0.1:$port;
    root $dir/data;
    # LoRA states and checkpoints can be gigabytes
    client_max_body_size 0;
    client_body_buffer_size 1m;
    location / {
      dav_methods PUT DELETE;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
    }
  }
}
CONF
  "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "http://127.0.0.1:$port"; exit 0; fi
    sleep 0.05
  done
  echo "remote-cache.sh: nginx did not start on 127.0.0.1:$port; see $dir/error.log" >&2
  cat "$dir/error.log" >&2 || true
  exit 1
  ;;
stop)
  if [ -f "$dir/nginx.pid" ]; then
    pid=$(cat "$dir/nginx.pid")
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" -s stop 2>/dev/null || kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    rm -f "$dir/nginx.pid"
  fi
  ;;
*)
  echo "usage: remote-cache.sh start DIR PORT | stop DIR" >&2
  exit 2
  ;;
esac
