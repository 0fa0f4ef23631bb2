#!/usr/bin/env bash
# check_torch_free.sh BINARY...: fails if any BINARY needs a LibTorch library (libtorch*,
# libc10*). The dispatcher and the registry run on machines without LibTorch (their images
# ship none), so neither they nor any library they link may pull it in. Reads the dynamic
# section (DT_NEEDED), which a torch symbol reached through a static library would add.
set -u
status=0
for binary in "$@"; do
  needed=$(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  [ -n "$needed" ] || { echo "$binary: no dynamic section read"; status=1; continue; }
  torch=$(grep -E '^lib(torch|c10)' <<<"$needed")
  if [ -n "$torch" ]; then
    echo "$binary needs LibTorch:" $torch
    status=1
  else
    echo "$binary: torch-free ($(wc -l <<<"$needed") libraries needed)"
  fi
done
exit $status
