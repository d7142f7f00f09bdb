# shellcheck shell=bash
# Shared by scripts/test and scripts/demo: the Debian 12 packages the build,
# the tests and the demo need, and the CMake build. Sourced, not run.

PEGADM_PACKAGES=(
    build-essential cmake pkg-config
    apache2 apache2-dev apache2-utils
    libapr1-dev libaprutil1-dev
    libcurl4-openssl-dev libjansson-dev libssl-dev libcmocka-dev
    # the Redis client's RESP formatter and reader, the memcached client's
    # consistent hashing
    libhiredis-dev libmemcached-dev
    python3 python3-pytest
    openssl curl ca-certificates
    # the memcheck run of httpd (tests/valgrind)
    valgrind
    # the layout check: every C file as .clang-format has it
    clang-format
    # the checks of the shell scripts and the Python code
    shellcheck pyflakes3
    # the static analysis of src/*.c (.clang-tidy)
    clang-tidy
    # the browser tests: headless chromium driven through chromedriver
    chromium chromium-driver python3-selenium
    # the shared-cache tests: several httpd nodes on a real Redis and memcached
    redis-server memcached
    # the identity-source and customer-database tests (mod_dbd, mod_authnz_ldap)
    libaprutil1-dbd-sqlite3 libaprutil1-dbd-pgsql postgresql slapd
    # the bootstrap script's own tests (node --test tests/js)
    nodejs
    # the Debian package: built from a copy of the git tree, checked by lintian
    debhelper dpkg-dev lintian git
    # the identity-provider tests: the real SSO modules, an OpenID provider
    # from npm (tests/idp, npm ci) and a SAML identity provider on lasso
    libapache2-mod-auth-openidc libapache2-mod-auth-mellon npm
    python3-lasso
    # the status handler's test: Debian's Prometheus scrapes it (and promtool)
    prometheus
)

pegadm_say() {
    printf '\n==> %s\n' "$*"
}

# Lists the packages of PEGADM_PACKAGES that are neither installed nor
# provided by an installed package (a nodejs that bundles npm provides npm).
pegadm_missing_packages() {
    local pkg status
    local -A provided=()
    while read -r pkg; do
        [[ -n $pkg ]] && provided[$pkg]=1
    done < <(dpkg-query -W -f='${db:Status-Abbrev} ${Provides}\n' 2>/dev/null |
        awk '$1 ~ /^ii/ { $1 = ""; gsub(/\([^)]*\)/, ""); gsub(/[ ,]+/, "\n"); print }')
    for pkg in "${PEGADM_PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null) || status=
        [[ $status == ii* || -n ${provided[$pkg]-} ]] || printf '%s\n' "$pkg"
    done
}

# Installs whatever is missing; does nothing (and needs no network or root)
# when everything is there already.
pegadm_install_packages() {
    local missing
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "dpkg-query not found: this script expects Debian 12 (bookworm)." >&2
        return 1
    fi
    mapfile -t missing < <(pegadm_missing_packages)
    if ((${#missing[@]} == 0)); then
        pegadm_say "Packages: all ${#PEGADM_PACKAGES[@]} already installed"
        return 0
    fi
    pegadm_say "Packages: installing ${missing[*]}"
    if ((EUID != 0)); then
        echo "Installing packages needs root; run this script as root." >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update &&
        apt-get install -y --no-install-recommends "${missing[@]}"
}

# Configures (afresh if the build directory belongs to another checkout)
# and builds into $1/build, or into $1/$2 with the CMake options that follow.
pegadm_build() {
    local root=$1 dir=${2:-build} cache home
    shift $(($# < 2 ? $# : 2))
    cache="$root/$dir/CMakeCache.txt"
    if [[ -f $cache ]]; then
        home=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$cache")
        if [[ $home != "$root" ]]; then
            pegadm_say "Build: $dir/ was configured for ${home:-another tree}; reconfiguring"
            rm -rf "$root/$dir/CMakeCache.txt" "$root/$dir/CMakeFiles"
        fi
    fi
    pegadm_say "Build: cmake -S . -B $dir $*"
    cmake -S "$root" -B "$root/$dir" "$@" &&
        cmake --build "$root/$dir" --parallel "$(nproc)"
}
