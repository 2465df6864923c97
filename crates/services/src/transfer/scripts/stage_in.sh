# shellcheck shell=bash
# Part of a transfer job script: Ironcrest writes the job's values (each one quoted word)
# above this text. Checked by shellcheck in scripts/test.
# Set above: target partial size part_size parallel wait_limit head_url get_url delete_url;
# `size` is empty for an upload announced without one (FirecREST v1's): the object's then.
# shellcheck disable=SC2154
header() { tr -d '\r' | sed -n "s/^$1: *//Ip" | head -n 1; }
work=
# Also stops the digests still waiting for parts of a download that was cut short.
trap 'kill $(jobs -p) 2>/dev/null; rm -f -- "$partial"; [ -z "$work" ] || rm -rf -- "$work"' EXIT
trap 'exit 143' TERM INT HUP
[ -d "$target" ] && fail 3 "upload the file: the target is a directory"
started=$(date +%s)
deadline=$(( started + wait_limit ))
until headers=$(curl --silent --fail --head -- "$head_url"); do
  now=$(date +%s)
  [ "$now" -ge "$deadline" ] && fail 4 "upload the file: the staged upload was not completed in time"
  # Often while a client is likely uploading, then every 30 s.
  if [ $(( now - started )) -lt 120 ]; then sleep 0.5; else sleep 30; fi
done
length=$(printf '%s\n' "$headers" | header Content-Length)
[ -n "$size" ] || size=$length
[ "$length" = "$size" ] || fail 5 "upload the file: the staged object has $length bytes, $size were announced"
etag=$(printf '%s\n' "$headers" | header ETag | tr -d '"')
get() { curl --silent --show-error --fail --retry 5 -- "$get_url"; }
arrived() { [ "$(stat -c %s -- "$partial")" -ge "$1" ]; }
# Digests every `parallel`-th part from part $1 on, each once it is wholly on disk (looking
# often, then every half second on a slow download); stops when the download has ended
# without bringing the part.
digest_lane() {
  local number offset length tries
  for (( number = $1; number <= count; number += parallel )); do
    offset=$(( (number - 1) * part_size ))
    length=$(( size - offset < part_size ? size - offset : part_size ))
    tries=0
    until arrived $(( offset + length )); do
      if [ -e "$work/fetched" ]; then arrived $(( offset + length )) && break; return 0; fi
      if (( ++tries < 20 )); then sleep 0.05; else sleep 0.5; fi
    done
    dd if="$partial" bs=1M iflag=skip_bytes,count_bytes skip="$offset" count="$length" status=none |
      md5sum > "$work/sum.$number"
  done
}
: > "$partial" || fail 6 "upload the file: the temporary file cannot be created"
if [[ $etag =~ ^[0-9a-f]{32}-([0-9]+)$ ]]; then
  count=${BASH_REMATCH[1]}
  parts=$(( size > part_size ? (size + part_size - 1) / part_size : 1 ))
  [ "$count" = "$parts" ] ||
    fail 9 "upload the file: the staged object was uploaded in $count parts, not the $parts parts of $part_size bytes handed out"
  work=$(mktemp -d) || fail 6 "upload the file: no scratch directory for the checksums"
  for (( lane = 1; lane <= parallel; lane++ )); do digest_lane "$lane" & done
  get > "$partial"
  fetched=$?
  echo "$fetched" > "$work/fetched"
  wait
  [ "$fetched" = 0 ] || fail 6 "upload the file: the staged object could not be downloaded, exit code:$fetched"
  sums=
  for (( number = 1; number <= count; number++ )); do
    read -r sum _ 2>/dev/null < "$work/sum.$number" || fail 7 "upload the file: part $number of $count did not arrive"
    sums+=$sum
  done
  computed=$(printf '%b' "$(printf '%s' "$sums" | sed 's/../\\x&/g')" | md5sum)
  computed="${computed%% *}-$count"
elif [[ $etag =~ ^[0-9a-f]{32}$ ]]; then
  computed=$(set -o pipefail; get | tee -- "$partial" | md5sum) ||
    fail 6 "upload the file: the staged object could not be downloaded, exit code:$?"
  computed=${computed%% *}
else
  # Not an MD5 (e.g. an encrypted object): the size checks are all there is.
  get > "$partial" || fail 6 "upload the file: the staged object could not be downloaded, exit code:$?"
  computed=$etag
fi
actual=$(stat -c %s -- "$partial") || fail 7 "upload the file: the downloaded file is missing"
[ "$actual" = "$size" ] || fail 7 "upload the file: $actual of $size bytes arrived"
[ "$computed" = "$etag" ] || fail 9 "upload the file: its checksum $computed differs from the staged object's $etag"
mv -f -- "$partial" "$target" || fail 10 "upload the file: it could not be renamed to the target"
curl --silent --output /dev/null --request DELETE -- "$delete_url" || true
awk -v bytes="$actual" 'BEGIN { printf "File was successfully downloaded (size: %.3fMB)\n", bytes / 1000000 }'
