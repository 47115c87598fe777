#!/usr/bin/env bash
# Make sure the services the test suite needs are up; start any that is down.
# Usage: scripts/ensure_services.sh [postgres] [redis] [rabbitmq]
set -uo pipefail

wait_for() { # name, check command
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then echo "ensure_services: $name is up"; return 0; fi
    sleep 1
  done
  echo "ensure_services: $name did not come up" >&2
  return 1
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG; }
rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

want=("$@")
[ ${#want[@]} -eq 0 ] && want=(postgres redis)

for svc in "${want[@]}"; do
  case $svc in
    postgres)
      if ! pg_up; then
        echo "ensure_services: starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
      fi
      wait_for postgres pg_up || exit 1 ;;
    redis)
      if ! redis_up; then
        echo "ensure_services: starting Redis"
        mkdir -p /var/lib/redis /var/log/redis
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
          --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
      fi
      wait_for redis redis_up || exit 1 ;;
    rabbitmq)
      if ! rabbit_up; then
        echo "ensure_services: starting RabbitMQ"
        rabbitmq-server -detached || true
      fi
      wait_for rabbitmq rabbit_up || exit 1 ;;
    *) echo "ensure_services: unknown service $svc" >&2; exit 2 ;;
  esac
done
