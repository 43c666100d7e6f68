#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds cadre and runs the main job:
# examples/documents/intake.yaml reads the shipped invoice with OCR (the
# image, then the same invoice as a PDF), extracts its number, date, vendor
# and total, validates them against a JSON Schema and stores the record in
# SQLite (invoices.db), printing each task live and the record at the end.
# The extraction is an LLM agent: offline on the scripted model unless
# CADRE_LLM_KIND, CADRE_LLM_MODEL, ... name a real one (docs/agents.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh --target cadre
cadre=./build/runtime/cadre
db=${CADRE_DB:-.cadre}
for doc in examples/documents/invoice.png examples/documents/invoice.pdf; do
  echo "== $doc"
  "$cadre" --db "$db" --config examples/documents/cadre.yaml \
    run examples/documents/intake.yaml --input "{\"path\": \"$doc\"}"
done
