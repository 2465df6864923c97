# shellcheck shell=bash
# Part of a transfer job script: Ironcrest writes the job's values (each one quoted word)
# above this text. Checked by shellcheck in scripts/test.
# Set above: source size part_size parallel scratch complete_url part_urls.
# shellcheck disable=SC2154
[ -r "$source" ] || fail 34 "download the file: it does not exist or is not readable"
actual=$(stat -L -c %s -- "$source") || fail 34 "download the file: it does not exist"
[ "$actual" = "$size" ] || fail 27 "download the file: it has $actual bytes now, $size when the transfer was requested"
mkdir -p -- "$scratch" || fail 1 "download the file: cannot create the scratch directory"
work=$(mktemp -d -- "$scratch/f7t-download.XXXXXXXX") || fail 1 "download the file: cannot create a scratch directory"
trap 'rm -rf -- "$work"' EXIT
trap 'exit 143' TERM INT HUP
count=${#part_urls[@]}
# Uploads the parts given as arguments one after another, 32 per curl (`--next`), so that one
# connection serves them and no more than 32 pipe writers wait at a time.
upload_parts() {
  local args number offset length input
  while (( $# )); do
    args=()
    for number in "${@:1:32}"; do
      offset=$(( (number - 1) * part_size ))
      length=$(( size - offset < part_size ? size - offset : part_size ))
      if [ "$count" -eq 1 ]; then
        input=$source
      else
        input=$work/part.$number
        rm -f -- "$input"
        mkfifo -- "$input" || return
        # A file that shrank meanwhile sends fewer bytes than declared, and the part fails.
        dd if="$source" of="$input" bs=1M iflag=skip_bytes,count_bytes skip="$offset" count="$length" status=none &
      fi
      (( ${#args[@]} )) && args+=(--next)
      args+=(--silent --show-error --fail --dump-header "$work/headers.$number" --output /dev/null
        --header "Content-Length: $length" --header 'Transfer-Encoding:' --header 'Expect:'
        --upload-file "$input" --url "${part_urls[number - 1]}")
    done
    shift $(( $# < 32 ? $# : 32 ))
    curl "${args[@]}"
    # Parts curl never reached (it stopped early) still have a writer waiting for a reader.
    # shellcheck disable=SC2046 # one word per pid
    kill $(jobs -p) 2>/dev/null
    wait
  done
}
# Sets `etag` to the ETag in part $1's response headers, with builtins only (no process per part).
etag_of() {
  local line
  etag=
  [ -f "$work/headers.$1" ] || return 1
  while IFS= read -r line; do
    line=${line%$'\r'}
    if [[ ${line,,} == etag:* ]]; then
      etag=${line#*:}
      etag=${etag#"${etag%%[! ]*}"}
      [ -n "$etag" ]
      return
    fi
  done < "$work/headers.$1"
  return 1
}
for _ in 1 2; do
  missing=()
  for (( number = 1; number <= count; number++ )); do
    etag_of "$number" || missing+=("$number")
  done
  for (( lane = 0; lane < parallel && lane < ${#missing[@]}; lane++ )); do
    parts=()
    for (( i = lane; i < ${#missing[@]}; i += parallel )); do parts+=("${missing[i]}"); done
    upload_parts "${parts[@]}" &
  done
  wait
done
{
  printf '<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
  for (( number = 1; number <= count; number++ )); do
    etag_of "$number" || fail 70 "download the file: part $number of $count could not be uploaded"
    printf '<Part><PartNumber>%s</PartNumber><ETag>%s</ETag></Part>' "$number" "$etag"
  done
  printf '</CompleteMultipartUpload>'
} > "$work/complete.xml" || exit
answer=$(curl --silent --show-error --fail --request POST --header 'Content-Type: application/xml' \
  --data-binary "@$work/complete.xml" -- "$complete_url") || fail 70 "download the file: completing the upload failed"
case "$answer" in
  *"<Error>"*) fail 70 "download the file: completing the upload failed: $answer" ;;
esac
echo "[INFO] Multipart file upload successfully completed"
