#!/usr/bin/env bash
# The engine demo: build an image from Debian's busybox-static, import it into a store, render it and
# run it in pods.
# Everything lands under demo/out/ (the store included), so it never touches /var/lib/rocket.
set -euo pipefail
cd "$(dirname "$0")/.."
rocket=(.venv/bin/rocket --dir demo/out/store)
out=demo/out
rm -rf "$out" && mkdir -p "$out/image/rootfs/bin" "$out/image/rootfs/etc"

cp /bin/busybox "$out/image/rootfs/bin/busybox"
for applet in sh ls cat echo httpd true false sleep; do
    ln -s busybox "$out/image/rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$out/image/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$out/image/rootfs/etc/group"
cat > "$out/image/manifest" <<'JSON'
{
  "acKind": "ImageManifest",
  "acVersion": "0.8.11",
  "name": "demo.rocket.test/busybox",
  "labels": [
    {"name": "version", "value": "1.35.0"},
    {"name": "os", "value": "linux"},
    {"name": "arch", "value": "amd64"}
  ],
  "app": {
    "exec": ["/bin/sh", "-c", "echo hello from rocket"],
    "user": "0",
    "group": "0"
  },
  "annotations": [{"name": "authors", "value": "rocket demo"}]
}
JSON

echo "== build (reproducible: mtimes clamped to SOURCE_DATE_EPOCH)"
SOURCE_DATE_EPOCH=1700000000 "${rocket[@]}" image build "$out/image" "$out/busybox.aci"
"${rocket[@]}" image validate "$out/busybox.aci"
echo "== fetch without a signature is refused (fail closed)"
if "${rocket[@]}" fetch "$out/busybox.aci"; then echo "demo: unsigned image was accepted" >&2; exit 1; fi
echo "== fetch with --insecure-options=image"
"${rocket[@]}" fetch --full --insecure-options=image "$out/busybox.aci"
"${rocket[@]}" image list
echo "== render"
"${rocket[@]}" image render --overwrite demo.rocket.test/busybox:1.35.0 "$out/rendered"
ls -l "$out/rendered/rootfs/bin" | head -n 5
echo "== verify and export give back the same image ID"
"${rocket[@]}" image verify
"${rocket[@]}" image export --overwrite demo.rocket.test/busybox "$out/exported.aci"
echo "== run it in a pod (the image was fetched unverified, so running it needs the flag again)"
if "${rocket[@]}" run demo.rocket.test/busybox; then echo "demo: an unverified image ran without the flag" >&2; exit 1; fi
"${rocket[@]}" run --insecure-options=image demo.rocket.test/busybox
"${rocket[@]}" run --insecure-options=image demo.rocket.test/busybox --exec /bin/sh -- -c 'echo "in pod $(hostname): $(ls /proc | grep -c "^[0-9]") processes visible"; exit 3' || echo "exit code $? came back from the app"
"${rocket[@]}" list
"${rocket[@]}" gc --grace-period=0s >/dev/null
echo "demo: ok (store in $out/store; try: .venv/bin/rocket --dir $out/store image list)"
