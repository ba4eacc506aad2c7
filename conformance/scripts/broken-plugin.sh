#!/bin/sh
# A deliberately broken CNI plugin for the suite's self-test: it runs the real plugin
# named by the first line below (run.sh writes a copy per plugin) and strips
# "interfaces" (and the ips' interface indexes) from ADD results. A suite that passes
# this has stopped checking results.
DELEGATE=@DELEGATE@
out=$("$DELEGATE")
rc=$?
if [ "$CNI_COMMAND" = ADD ] && [ $rc -eq 0 ]; then
  printf '%s' "$out" | jq 'del(.interfaces) | if .ips then .ips |= map(del(.interface)) else . end'
else
  printf '%s\n' "$out"
fi
exit $rc
