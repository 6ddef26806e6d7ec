#!/usr/bin/env bash
# Make sure a Redis answers on the configured URL (config.yaml, or GRIDBOT_REDIS__URL). If none
# does and the URL points at this machine, start one with append-only persistence under ./var/.
set -euo pipefail
cd "$(dirname "$0")/.."

url=$(.venv/bin/python -c 'from bot.config import load_config; print(load_config().redis.url)')
if redis-cli -u "$url" ping >/dev/null 2>&1; then
  exit 0
fi
read -r host port < <(.venv/bin/python -c '
import sys
from urllib.parse import urlparse
u = urlparse(sys.argv[1]); print(u.hostname or "127.0.0.1", u.port or 6379)' "$url")
case "$host" in
  127.*|localhost|::1) ;;
  *) echo "ensure-redis: no Redis answers at $url and it is not on this machine; start it first" >&2; exit 1 ;;
esac
mkdir -p var/redis
echo "ensure-redis: starting redis-server on $host:$port (data in var/redis, appendonly)"
redis-server --bind "$host" --port "$port" --appendonly yes --dir "$PWD/var/redis" \
  --daemonize yes --pidfile "$PWD/var/redis/redis.pid" --logfile "$PWD/var/redis/redis.log"
for _ in $(seq 50); do
  redis-cli -u "$url" ping >/dev/null 2>&1 && exit 0
  sleep 0.1
done
echo "ensure-redis: redis-server did not come up; see var/redis/redis.log" >&2
exit 1
