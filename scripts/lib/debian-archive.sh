# Sourced, not run. Defines `debian_archive`: prints the base address of the
# Debian archive this machine's apt already uses (for example the address on
# a "URIs:" line of a deb822 .sources file, or the second field of a
# one-line "deb" entry), so scripts that need Debian's pool or another suite
# never carry an address of their own. Security and third-party sources are
# skipped: the main archive is the one whose entries list the machine's own
# codename as a suite. Returns 1 with nothing printed when none is found.

debian_archive() {
  local codename files f uri
  codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || return 1
  files=()
  [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && files+=("$f")
  done
  [ ${#files[@]} -gt 0 ] || return 1
  uri=$(awk -v cn="$codename" '
    # deb822 stanzas: remember URIs and Suites until a blank line ends one.
    function flush() {
      if (uris != "" && index(" " suites " ", " " cn " ") && found == "") {
        split(uris, u, " "); found = u[1]
      }
      uris = ""; suites = ""
    }
    FNR == 1 { flush() }
    /^[ \t]*#/ { next }
    /^[ \t]*$/ { flush(); next }
    /^URIs:/ { sub(/^URIs:[ \t]*/, ""); uris = $0; next }
    /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0; next }
    /^deb[ \t]/ {
      i = 2
      if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
      if ($(i + 1) == cn && found == "") found = $i
      next
    }
    END { flush(); if (found != "") print found }
  ' "${files[@]}")
  [ -n "$uri" ] || return 1
  echo "${uri%/}"
}
