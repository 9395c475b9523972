# Sourced by every sweep script below experiments/results/ (`. "$(dirname "$0")/../preamble.sh"`, as deep as it is):
# stop on an unset variable, report a failed pipe, run from the repository root, one thread a job (two jobs share
# two cores without oversubscribing them), the local data copies unless ALPHAVIL_DATA_DIR names others.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export OMP_NUM_THREADS=1 ALPHAVIL_DATA_DIR=${ALPHAVIL_DATA_DIR:-../shared/data}
