#!/bin/sh
# Runs the package's tests under the system Python, as ctest's python_package does (see
# tests/CMakeLists.txt): $1 is the folder for the tests' temporary files. Exits 77, which ctest
# counts as skipped, where that Python lacks numpy or pytest.
python=${CLEVAL_TEST_PYTHON:-/usr/bin/python3}
if ! "$python" -c 'import numpy, pytest' 2>/dev/null; then
    echo "skipped: $python lacks numpy or pytest (Debian: python3-numpy python3-pytest)"
    exit 77
fi
exec "$python" -m pytest -q -p no:cacheprovider --basetemp="$1" "$(dirname "$0")"
