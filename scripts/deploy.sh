#!/usr/bin/env bash
# One environment's release of one image, named by its digest: what the deploy workflow
# (.github/workflows/deploy.yml) runs for dev, staging and prod in turn, and what
# `make rollback` runs by hand with an earlier digest.
#
#   scripts/deploy.sh [--dry-run] [--image-archive FILE] ENV DIGEST [STEP...]
#
#   ENV     dev, staging or prod: infra/terraform/envs/ENV.tfvars and envs/ENV.backend.hcl
#   DIGEST  sha256:<64 hex digits>, the image's manifest digest. The image is
#           REGION-docker.pkg.dev/PROJECT/ey/ey-platform@DIGEST, in ENV's own project
#           (project and region from envs/ENV.tfvars).
#   STEP    run in the order given; without any: apply smoke (a rollback)
#     push              copy the image from --image-archive (the build's OCI archive) into
#                       ENV's registry with its digest unchanged, unless it is there
#     apply             terraform init, plan with image=...@DIGEST, apply that same plan
#     smoke             run the batch and transform jobs and wait for each, then fail if
#                       bq_raw.products, bq_raw.users or bq_analytics.fact_orders is empty
#     dbt-check         dbt build --select state:modified+ --defer against the manifest of
#                       what ENV runs, into the CI dataset (EYP_DBT_CI_DATASET, bq_ci);
#                       skipped while no manifest has been published
#     publish-manifest  dbt parse with ENV's settings; its manifest is the next dbt-check's
#   --dry-run           print the commands, one a line, instead of running them
#
# Job and dataset names come from terraform's outputs (in a dry run, their defaults). The
# dbt manifest lives beside ENV's Terraform state (envs/ENV.backend.hcl: bucket/prefix/
# dbt/manifest.json), which the deployer already reads and writes, and nobody else.
# Authentication is the caller's: Workload Identity Federation in the workflow, gcloud's
# own login (as the deployer or an owner) for a rollback by hand.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TF="$ROOT/infra/terraform"
DBT_PROJECT="$ROOT/src/ey_platform/dbt"
DBT="${DBT:-dbt}"
CI_DATASET="${EYP_DBT_CI_DATASET:-bq_ci}"
STEPS=(push apply smoke dbt-check publish-manifest)

fail() { printf 'error: %s\n' "$*" >&2; exit "${code:-1}"; }
usage() { code=2 fail "$*; see $0 --help"; }
say() { printf 'deploy: %s\n' "$*" >&2; }

dry_run=0
archive=""
while (($#)); do
    case "$1" in
        --dry-run) dry_run=1; shift ;;
        --image-archive) (($# > 1)) || usage "--image-archive needs a FILE"; archive="$2"; shift 2 ;;
        --image-archive=*) archive="${1#*=}"; shift ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        --) shift; break ;;
        -*) usage "unknown option $1" ;;
        *) break ;;
    esac
done
(($# >= 2)) || usage "ENV and DIGEST are required"
TARGET="$1" DIGEST="$2"
shift 2
case "$TARGET" in
    dev | staging | prod) ;;
    *) usage "ENV must be dev, staging or prod, not '$TARGET'" ;;
esac
[[ "$DIGEST" =~ ^sha256:[0-9a-f]{64}$ ]] ||
    usage "DIGEST must be sha256: and 64 lowercase hex digits (an image digest, not a tag), not '$DIGEST'"
steps=("$@")
((${#steps[@]})) || steps=(apply smoke)
for step in "${steps[@]}"; do
    [[ " ${STEPS[*]} " == *" $step "* ]] || usage "unknown STEP '$step' (one of: ${STEPS[*]})"
    [[ "$step" != push || -n "$archive" ]] || usage "STEP push needs --image-archive FILE"
done

TFVARS="envs/$TARGET.tfvars"
BACKEND="envs/$TARGET.backend.hcl"
for file in "$TFVARS" "$BACKEND"; do
    [[ -f "$TF/$file" ]] || fail "no infra/terraform/$file"
done

# hcl_string FILE NAME: the string value of `NAME = "..."` in FILE, empty if absent.
hcl_string() {
    sed -n -E "s/^[[:space:]]*$2[[:space:]]*=[[:space:]]*\"([^\"]*)\".*/\\1/p" "$TF/$1" | tail -n 1
}
PROJECT="$(hcl_string "$TFVARS" project)"
REGION="$(hcl_string "$TFVARS" region)"
REGION="${REGION:-europe-west1}" # the default of variables.tf
[[ -n "$PROJECT" ]] || fail "infra/terraform/$TFVARS sets no project"
if ((!dry_run)) && [[ "$PROJECT" == *REPLACE-ME* ]]; then
    fail "infra/terraform/$TFVARS: project is still $PROJECT; set this environment's project"
fi
REPOSITORY="$REGION-docker.pkg.dev/$PROJECT/ey/ey-platform"
IMAGE="$REPOSITORY@$DIGEST"
MANIFEST_URI="gs://$(hcl_string "$BACKEND" bucket)/$(hcl_string "$BACKEND" prefix)/dbt/manifest.json"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# quote ARG: ARG as a shell word (as shlex.quote does), for the dry run's lines.
quote() {
    if [[ "$1" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}

# run CMD...: run it, or in a dry run print it.
run() {
    if ((dry_run)); then
        local arg line=""
        for arg in "$@"; do line+=" $(quote "$arg")"; done
        printf '%s\n' "${line# }"
    else
        "$@"
    fi
}

initialised=0
init() {
    ((initialised)) && return
    run terraform -chdir="$TF" init -input=false -reconfigure "-backend-config=$BACKEND"
    initialised=1
}

# The names this environment's state holds, or their defaults (a dry run, a first apply).
BATCH_JOB=ey-batch TRANSFORM_JOB=ey-transform
RAW_DATASET=bq_raw ANALYTICS_DATASET=bq_analytics BQ_LOCATION=EU
outputs_read=0
read_outputs() {
    ((outputs_read)) && return
    init
    outputs_read=1
    if ((dry_run)); then
        run terraform -chdir="$TF" output -json
        return
    fi
    local json names
    json="$(terraform -chdir="$TF" output -json)"
    names="$(python3 -c '
import json, sys
out = {name: o["value"] for name, o in json.loads(sys.argv[1]).items()}
jobs, settings = out.get("jobs", {}), out.get("settings", {})
print("\t".join([
    jobs.get("batch", "ey-batch"), jobs.get("transform", "ey-transform"),
    settings.get("EYP_WAREHOUSE__RAW_DATASET", "bq_raw"),
    settings.get("EYP_WAREHOUSE__ANALYTICS_DATASET", "bq_analytics"),
    settings.get("EYP_WAREHOUSE__BIGQUERY__LOCATION", "EU"),
]))' "$json")"
    IFS=$'\t' read -r BATCH_JOB TRANSFORM_JOB RAW_DATASET ANALYTICS_DATASET BQ_LOCATION <<< "$names"
}

step_push() {
    if ((!dry_run)); then
        [[ -f "$archive" ]] || fail "no image archive at $archive"
        if skopeo inspect --no-tags "docker://$IMAGE" > /dev/null 2>&1; then
            say "$IMAGE is already in $TARGET's registry"
            return
        fi
        gcloud auth print-access-token |
            skopeo login --username oauth2accesstoken --password-stdin "${REPOSITORY%%/*}"
    else
        run gcloud auth print-access-token
        run skopeo login --username oauth2accesstoken --password-stdin "${REPOSITORY%%/*}"
    fi
    # The same manifest, byte for byte: the digest tested in dev is the one prod runs.
    local tag="${GITHUB_SHA:-$(git -C "$ROOT" rev-parse HEAD)}"
    run skopeo copy --preserve-digests "oci-archive:$archive" "docker://$REPOSITORY:$tag"
    run skopeo inspect --no-tags "docker://$IMAGE"
}

step_apply() {
    local plan="$WORK/$TARGET.tfplan"
    init
    # A digest this environment's registry does not hold fails here, not in Cloud Run.
    run gcloud artifacts docker images describe "$IMAGE" --project "$PROJECT" "--format=value(image_summary.digest)"
    run terraform -chdir="$TF" plan -input=false "-var-file=$TFVARS" "-var=image=$IMAGE" "-out=$plan"
    if ((!dry_run)) && [[ -n "${GITHUB_STEP_SUMMARY:-}" ]]; then
        { printf '### terraform plan: %s\n\n```\n' "$TARGET"
          terraform -chdir="$TF" show -no-color "$plan"
          printf '```\n'; } >> "$GITHUB_STEP_SUMMARY"
    fi
    run terraform -chdir="$TF" apply -input=false "$plan"
}

step_smoke() {
    read_outputs
    local job
    for job in "$BATCH_JOB" "$TRANSFORM_JOB"; do
        run gcloud run jobs execute "$job" --project "$PROJECT" --region "$REGION" --wait
    done
    local tables=("$RAW_DATASET.products" "$RAW_DATASET.users" "$ANALYTICS_DATASET.fact_orders")
    local table sql="SELECT" counts
    for table in "${tables[@]}"; do
        sql+=" (SELECT COUNT(*) FROM \`$PROJECT.$table\`) AS ${table#*.},"
    done
    sql="${sql%,}"
    if ((dry_run)); then
        run bq "--project_id=$PROJECT" "--location=$BQ_LOCATION" --format=csv --quiet query --nouse_legacy_sql "$sql"
        return
    fi
    counts="$(bq "--project_id=$PROJECT" "--location=$BQ_LOCATION" --format=csv --quiet query --nouse_legacy_sql "$sql")"
    counts="${counts##*$'\n'}" # the values, under the header line
    local -a values
    IFS=, read -r -a values <<< "$counts"
    local i
    for i in "${!tables[@]}"; do
        [[ "${values[i]:-0}" =~ ^[1-9][0-9]*$ ]] ||
            fail "smoke run of $TARGET: $PROJECT.${tables[i]} has no rows after the batch and the transform"
    done
    say "smoke run of $TARGET: ${tables[*]} hold ${values[*]} rows"
}

# dbt_env DATASET: what profiles.yml and the sources read, for the gcp target in ENV's
# project, dbt writing to DATASET (the platform's transform writes to the build dataset).
dbt_env() {
    printf '%s\n' env EYP_DBT_TARGET=gcp "EYP_GCP__PROJECT=$PROJECT" \
        "EYP_WAREHOUSE__BIGQUERY__LOCATION=$BQ_LOCATION" "EYP_WAREHOUSE__RAW_DATASET=$RAW_DATASET" \
        "EYP_WAREHOUSE__ANALYTICS_DATASET=$1" "EYP_DBT_SCHEMA=$1"
}

dbt_args() {
    printf '%s\n' --no-send-anonymous-usage-stats --project-dir "$DBT_PROJECT" \
        --profiles-dir "$DBT_PROJECT" --target-path "$WORK/dbt/target" --log-path "$WORK/dbt/logs"
}

step_dbt_check() {
    read_outputs
    if ((!dry_run)) && ! gcloud storage ls "$MANIFEST_URI" > /dev/null 2>&1; then
        say "no dbt manifest at $MANIFEST_URI yet (nothing published to compare with): skipped"
        return
    fi
    run gcloud storage cp "$MANIFEST_URI" "$WORK/state/manifest.json"
    local -a env args
    mapfile -t env < <(dbt_env "$CI_DATASET")
    mapfile -t args < <(dbt_args)
    # Modified models and everything downstream are built and tested in the CI dataset;
    # what they read and did not change is read where ENV has it (the manifest's relations).
    run "${env[@]}" "$DBT" build --select state:modified+ --defer --state "$WORK/state" "${args[@]}"
}

step_publish_manifest() {
    read_outputs
    local -a env args
    # The manifest's relations are where ENV's transform builds: the build dataset.
    mapfile -t env < <(dbt_env "${ANALYTICS_DATASET}_build")
    mapfile -t args < <(dbt_args)
    run "${env[@]}" "$DBT" parse "${args[@]}"
    run gcloud storage cp "$WORK/dbt/target/manifest.json" "$MANIFEST_URI"
}

for step in "${steps[@]}"; do
    ((dry_run)) || say "$TARGET: $step ($IMAGE)"
    "step_${step//-/_}"
done
