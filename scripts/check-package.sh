#!/usr/bin/env bash
# Checks the two NuGet packages the way a user outside this repository meets them:
#   1. `dotnet pack -c Release` of src/Ddpm (package Ddpm) and src/Ddpm.Cli (package Ddpm.Tool, the `ddpm` .NET tool)
#      into a temporary folder;
#   2. a new console app in a temporary directory (its nuget.config adds that folder as a source):
#      `dotnet add package Ddpm`, a Program.cs that builds a noise schedule and runs a tiny U-Net forward pass,
#      `dotnet build` + run and `dotnet publish` + run. On Debian 12 this only works when the package's
#      buildTransitive/Ddpm.targets patched TorchSharp's native wrapper in the app's own output (shared/PLATFORM.md §2);
#   3. `dotnet tool install --tool-path ... Ddpm.Tool`, then `ddpm model info --preset tiny` and a small `ddpm demo toy`.
# Prints "package check: ok" at the end, or "package check: FAILED: ..." (with the failing step's log) and exits 1.
#
# The app restores into its own package folder under the temporary directory (NUGET_PACKAGES), so the Ddpm packages
# under test never land in the user's NuGet cache (where a stale Ddpm 0.1.0 would shadow the next pack). That cache is
# only read, as a fallback folder, for the dependencies (TorchSharp, libtorch: 600 MB unpacked) so that they are not
# downloaded and unpacked again on every run; restore still resolves them from the Ddpm package's dependency list.
# All temporary files are removed on exit. Takes a few minutes, most of it copying libtorch.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

export DOTNET_CLI_TELEMETRY_OPTOUT=1
export DOTNET_NOLOGO=1
export DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

version="$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props | head -n 1)"
[ -n "$version" ] || { echo "package check: FAILED: no <Version> in Directory.Build.props" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/ddpm-package-check.XXXXXX")"
# DDPM_PACKAGE_CHECK_KEEP=1 keeps the temporary directory (packages, app, logs) for a look after a failure.
trap 'if [ -n "${DDPM_PACKAGE_CHECK_KEEP:-}" ]; then echo "package check: kept $work" >&2; else rm -rf "$work"; fi' EXIT
artifacts="$work/artifacts"
logs="$work/logs"
mkdir -p "$artifacts" "$logs"
started=$SECONDS

say() { echo "package check: $*"; }
fail() {
  echo "package check: FAILED: $*" >&2
  exit 1
}
# run NAME COMMAND...: runs the command with its output in $logs/NAME.log; on failure shows the log's end and fails.
run() {
  local name="$1"
  shift
  if ! "$@" >"$logs/$name.log" 2>&1; then
    echo "---- last lines of the $name log ($*) ----" >&2
    tail -n 60 "$logs/$name.log" >&2
    echo "----" >&2
    fail "$name failed"
  fi
}
# has FILE TEXT: the zip FILE holds an entry named TEXT (entry names are stored uncompressed; no unzip needed).
has() { LC_ALL=C grep -a -q -F -- "$2" "$1"; }

# 1. Pack.
say "packing Ddpm and Ddpm.Tool $version"
run pack-library dotnet pack src/Ddpm/Ddpm.csproj -c Release -o "$artifacts"
run pack-tool dotnet pack src/Ddpm.Cli/Ddpm.Cli.csproj -c Release -o "$artifacts"
library="$artifacts/Ddpm.$version.nupkg"
tool="$artifacts/Ddpm.Tool.$version.nupkg"
[ -f "$library" ] || fail "dotnet pack made no $(basename "$library") (made: $(ls "$artifacts"))"
[ -f "$tool" ] || fail "dotnet pack made no $(basename "$tool") (made: $(ls "$artifacts"))"
for entry in README.md LICENSE lib/net10.0/Ddpm.dll buildTransitive/Ddpm.targets buildTransitive/Ddpm.NativeFix.targets \
             buildTransitive/WeakenMissingGlibcxxVersions.cs build/Ddpm.targets; do
  has "$library" "$entry" || fail "$(basename "$library") has no $entry"
done
! has "$library" "models/" || fail "$(basename "$library") contains the repository's models/"
for entry in DotnetToolSettings.xml tools/net10.0/any/Ddpm.Cli.dll runtimes/linux-x64/native/libLibTorchSharp.so \
             runtimes/linux-x64/native/libtorch_cpu.so README.md; do
  has "$tool" "$entry" || fail "$(basename "$tool") has no $entry"
done
say "packed $(basename "$library") ($(du -k "$library" | cut -f1) KiB), $(basename "$tool") ($(du -m "$tool" | cut -f1) MiB)"

# 2. A console app that references the package.
global_packages="${NUGET_PACKAGES:-}"
if [ -z "$global_packages" ]; then
  global_packages="$(dotnet nuget locals global-packages --list | sed -n 's/^global-packages: *//p' | head -n 1)"
fi
global_packages="${global_packages%/}"
export NUGET_PACKAGES="$work/nuget-packages"
{
  echo '<?xml version="1.0" encoding="utf-8"?>'
  echo '<configuration>'
  echo '  <packageSources>'
  echo "    <add key=\"ddpm-check-local\" value=\"$artifacts\" />"
  echo '  </packageSources>'
  if [ -n "$global_packages" ] && [ -d "$global_packages" ]; then
    echo '  <fallbackPackageFolders>'
    echo "    <add key=\"user-cache\" value=\"$global_packages\" />"
    echo '  </fallbackPackageFolders>'
  fi
  echo '</configuration>'
} >"$work/nuget.config"

app="$work/app"
say "creating a console app that does 'dotnet add package Ddpm --version $version'"
cd "$work"
run new dotnet new console --name DdpmConsumer --output "$app" --no-restore
run add-package dotnet add "$app/DdpmConsumer.csproj" package Ddpm --version "$version"
cat >"$app/Program.cs" <<'EOF'
// Written by scripts/check-package.sh: uses the Ddpm package the way an outside project would.
using System.Globalization;
using Ddpm.Models;
using Ddpm.Schedules;
using TorchSharp;

var schedule = NoiseSchedule.Linear();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"schedule: T={schedule.Timesteps} beta_1={schedule.Betas[0]:G3} alpha_bar_T={schedule.AlphasCumprod[^1]:E2}"));

torch.manual_seed(0);
using var net = new UNet(UNetPresets.Tiny);
net.eval();
using (torch.no_grad())
{
    using var x = torch.randn(2, 1, 8, 8);
    using var t = torch.tensor(new long[] { 0, 999 });
    using var y = net.forward(x, t);
    bool finite = torch.isfinite(y).all().item<bool>();
    Console.WriteLine($"unet: [{string.Join(", ", x.shape)}] -> [{string.Join(", ", y.shape)}], finite: {finite}");
}
Console.WriteLine("consumer: ok");
EOF

check_app_output() {
  local log="$1" what="$2"
  grep -q '^schedule: T=1000 beta_1=0.0001 ' "$log" || fail "$what: no noise schedule line (see above)"
  grep -q '^unet: \[2, 1, 8, 8\] -> \[2, 1, 8, 8\], finite: True$' "$log" || fail "$what: no U-Net forward line"
  grep -q '^consumer: ok$' "$log" || fail "$what: did not finish"
}

run build dotnet build "$app/DdpmConsumer.csproj" -c Release
grep -qi "ddpm/$version/buildTransitive/Ddpm.targets" "$app"/obj/DdpmConsumer.csproj.nuget.g.targets \
  || fail "the app's build does not import the package's buildTransitive/Ddpm.targets"
grep -h "Ddpm: marked" "$logs/build.log" | sed 's/^ */package check: build: /' | sort -u || true
if ! dotnet "$app/bin/Release/net10.0/DdpmConsumer.dll" >"$logs/app.log" 2>&1; then
  tail -n 40 "$logs/app.log" >&2
  fail "the app built against the package does not run (Debian 12: was libLibTorchSharp.so patched?)"
fi
check_app_output "$logs/app.log" "the app"
sed -n 's/^\(schedule\|unet\): /package check: app: \1: /p' "$logs/app.log"

run publish dotnet publish "$app/DdpmConsumer.csproj" -c Release -o "$work/app-publish"
if ! dotnet "$work/app-publish/DdpmConsumer.dll" >"$logs/app-publish.log" 2>&1; then
  tail -n 40 "$logs/app-publish.log" >&2
  fail "the published app does not run (Debian 12: was libLibTorchSharp.so patched after Publish?)"
fi
check_app_output "$logs/app-publish.log" "the published app"
say "app: dotnet build + run and dotnet publish + run work"

# 3. The tool.
say "installing the tool: dotnet tool install --tool-path ... --add-source ... Ddpm.Tool --version $version"
run tool-install dotnet tool install --tool-path "$work/tools" --add-source "$artifacts" Ddpm.Tool --version "$version"
ddpm="$work/tools/ddpm"
[ -x "$ddpm" ] || fail "the tool installed no 'ddpm' command"
if ! "$ddpm" model info --preset tiny >"$logs/model-info.log" 2>&1; then
  tail -n 40 "$logs/model-info.log" >&2
  fail "'ddpm model info --preset tiny' failed"
fi
grep -q '^parameters: [0-9][0-9]*$' "$logs/model-info.log" || fail "'ddpm model info' printed no parameter count"
say "tool: ddpm model info --preset tiny: $(grep '^parameters:' "$logs/model-info.log")"
if ! "$ddpm" demo toy --n 256 --ddim-steps 10 --out "$work/toy" >"$logs/demo-toy.log" 2>&1; then
  tail -n 40 "$logs/demo-toy.log" >&2
  fail "'ddpm demo toy' failed"
fi
for file in toy-samples.png samples-ddpm.csv samples-ddim.csv; do
  [ -s "$work/toy/$file" ] || fail "'ddpm demo toy' wrote no $file"
done
say "tool: ddpm demo toy --n 256 --ddim-steps 10 wrote toy-samples.png, samples-ddpm.csv, samples-ddim.csv"

say "took $((SECONDS - started)) s"
say "ok"
