#!/usr/bin/env bash
# A nightly backup with coffer's current commands: back up, apply retention, prune, and
# read a rotating seventh of the data back. Exits with the worst status of the steps, so
# cron or systemd reports a failure; exit 3 (some files unreadable) is passed through.
#
# Settings come from the environment (see coffer-nightly.env):
#   COFFER_REPO, COFFER_PASSPHRASE_FILE (mode 0600), BACKUP_PATHS (space-separated),
#   BACKUP_EXCLUDES (space-separated globs, optional), COFFER (the command, default coffer)
set -uo pipefail

coffer=${COFFER:-coffer}
read -r -a paths <<<"${BACKUP_PATHS:?set BACKUP_PATHS}"
read -r -a excludes <<<"${BACKUP_EXCLUDES:-}"
exclude_args=()
for e in "${excludes[@]}"; do exclude_args+=(--exclude "$e"); done

worst=0
step() {
  "$@"
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "coffer-nightly: '$*' exited $rc" >&2
    [ "$rc" -gt "$worst" ] && worst=$rc
  fi
  return "$rc"
}

# A locked repository (another run, a prune) is waited for, up to an hour.
step $coffer backup --retry-lock 3600 --tag nightly "${exclude_args[@]}" "${paths[@]}"
backup_rc=$?
# Retention and prune only after a backup that stored a snapshot (0, or 3: incomplete).
if [ "$backup_rc" -eq 0 ] || [ "$backup_rc" -eq 3 ]; then
  step $coffer forget --retry-lock 3600 --tag nightly --keep-daily 7 --keep-weekly 5 --keep-monthly 12
  step $coffer prune --retry-lock 3600
fi
# Day of the week 1..7 picks the slice: the whole repository is read once a week.
step $coffer verify --retry-lock 3600 --read-data-subset "$(date +%u)/7"
exit "$worst"
