#!/usr/bin/env bash
# Set up what the real-engine tests need (docs/real-engine-tests.md): sd-scripts at the image's
# pinned commit, and a separate venv with its own pinned requirements and a CPU torch.
#
#   tests/container/real_engine/setup_sd_scripts.sh SD_SCRIPTS_DIR SD_SCRIPTS_VENV
#
# Idempotent: an existing checkout (at the right commit) and venv are kept, and brought to the pins.
set -euo pipefail
SD_SCRIPTS_DIR=${1:?usage: setup_sd_scripts.sh SD_SCRIPTS_DIR SD_SCRIPTS_VENV}
SD_SCRIPTS_VENV=${2:?usage: setup_sd_scripts.sh SD_SCRIPTS_DIR SD_SCRIPTS_VENV}
# Must match training_container/Dockerfile (SD_SCRIPTS_TAG / SD_SCRIPTS_COMMIT).
TAG=v0.10.1
COMMIT=ae72efb92babe89ff8e70f057e42db68440e8d61

if [ ! -f "$SD_SCRIPTS_DIR/train_network.py" ]; then
    git clone --depth 1 --branch "$TAG" https://github.com/kohya-ss/sd-scripts.git "$SD_SCRIPTS_DIR"
fi
if [ -d "$SD_SCRIPTS_DIR/.git" ]; then
    test "$(git -C "$SD_SCRIPTS_DIR" rev-parse HEAD)" = "$COMMIT" \
        || { echo "$SD_SCRIPTS_DIR is not at $TAG ($COMMIT)" >&2; exit 1; }
fi

REPO=$(cd "$(dirname "$0")/../../.." && pwd)
# The image's torch is its base image's (FROM pytorch/pytorch:<torch version>-...); pip picks the
# torchvision built for it.
TORCH=$(sed -n 's|^FROM pytorch/pytorch:\([0-9.]*\)-.*|\1|p' "$REPO/training_container/Dockerfile")
test -n "$TORCH" || { echo "no pytorch/pytorch base image in training_container/Dockerfile" >&2; exit 1; }

if [ ! -x "$SD_SCRIPTS_VENV/bin/python" ]; then
    python3 -m venv "$SD_SCRIPTS_VENV"
fi
# Its requirements without the trailing "-e ." (the tests put the checkout on PYTHONPATH), then
# what the image adds (training_container/image-requirements.txt): the image's Python stack, so the
# diffusers engine is tested with the versions `engine: diffusers` jobs run (test_real_image_stack.py).
grep -v '^-e' "$SD_SCRIPTS_DIR/requirements.txt" > "$SD_SCRIPTS_VENV/sd-scripts-requirements.txt"
"$SD_SCRIPTS_VENV/bin/pip" install -q "torch==$TORCH" torchvision \
    -r "$SD_SCRIPTS_VENV/sd-scripts-requirements.txt" -r "$REPO/training_container/image-requirements.txt"

# A CPU-only torch with torchvision's CUDA wheel: torchvision's compiled ops cannot load, and
# its fake-op registrations for nms/qnms then fail at import ("operator torchvision::nms does not
# exist"). sd-scripts only uses torchvision.transforms, so register those two only when the ops
# loaded. Nothing is changed when torchvision imports cleanly.
if ! "$SD_SCRIPTS_VENV/bin/python" -W ignore -c "import torchvision" 2>/dev/null; then
    meta=$("$SD_SCRIPTS_VENV/bin/python" -c "import importlib.util as u; print(u.find_spec('torchvision').submodule_search_locations[0])")/_meta_registrations.py
    sed -i 's/^@torch.library.register_fake("torchvision::\(q\?nms\)")/@(torch.library.register_fake("torchvision::\1") if torchvision.extension._has_ops() else (lambda f: f))/' "$meta"
    "$SD_SCRIPTS_VENV/bin/python" -W ignore -c "import torchvision"
fi
echo "sd-scripts $TAG in $SD_SCRIPTS_DIR; its Python: $SD_SCRIPTS_VENV/bin/python"
