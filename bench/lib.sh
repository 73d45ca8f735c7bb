# Shared by the bench/ scripts (sourced, not run).

# free_port prints a loopback port nobody listens on: the machine is
# shared, and a fixed port may be taken by someone else's agent. It gives
# up after 100 tries.
free_port() {
  local p i
  for i in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return 0; }
  done
  echo "no free loopback port found in 100 tries" >&2
  return 1
}
