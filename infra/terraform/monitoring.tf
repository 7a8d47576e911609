# Cloud Monitoring of the platform: who is notified, log-based metrics counted from the
# JSON lines the jobs and worker pools write (the events of the observability contract:
# job.failed, batch.held, quality.failed, batch.load), alert policies on them and on
# Google's own metrics of Cloud Run and Pub/Sub, and one dashboard. The application
# alerts by itself too (EYP_ALERTS__WEBHOOK_URL); these policies also fire when the
# process died before it could, and reach people who read no chat.
locals {
  # The log lines the metrics count: those of this platform's jobs and worker pools
  # (run.tf names them ey-NAME), whatever else runs in the project.
  platform_logs = join(" OR ", [
    "(resource.type=\"cloud_run_job\" AND resource.labels.job_name=(${join(" OR ", [for name in keys(local.run_jobs) : "\"ey-${name}\""])}))",
    "(resource.type=\"cloud_run_worker_pool\" AND resource.labels.worker_pool_name=(${join(" OR ", [for name in keys(local.workers) : "\"ey-${name}\""])}))",
  ])
  # Each metric: the event (jsonPayload.message) it counts, a further condition, the
  # fields it keeps as labels, and for a distribution the field it records.
  log_metrics = {
    job_failures = {
      event       = "job.failed"
      also        = ""
      description = "Runs of a job that failed (log event job.failed)."
      labels      = { job = "The job that failed: batch, transform, poll or consume." }
      value       = null
    }
    batches_held = {
      event       = "batch.held"
      also        = ""
      description = "Batch days held by a guard: too few rows, or schema drift under freeze (log event batch.held)."
      labels      = { entity = "The entity whose day was held." }
      value       = null
    }
    quality_failures = {
      event       = "quality.failed"
      also        = ""
      description = "Data-quality checks that did not pass (log event quality.failed)."
      labels = {
        check_name = "volume, schema, freshness or a dbt test."
        entity     = "The entity, source or model checked."
        status     = "warn or fail."
      }
      value = null
    }
    stale_sources = {
      event       = "quality.failed"
      also        = "jsonPayload.check_name=\"freshness\""
      description = "Freshness results that did not pass (log event quality.failed, check freshness): a source past its warn limit (status warn), or past its error limit or not measured (status fail). The dashboard charts both; the alert policy fires on fail."
      labels = {
        entity = "The source table: products, users or carts_events."
        status = "warn or fail."
      }
      value = null
    }
    rows_loaded = {
      event       = "batch.load"
      also        = ""
      description = "Rows each batch load put in the warehouse (log event batch.load, field rows)."
      labels = {
        entity = "The entity loaded."
        status = "loaded, unchanged or held."
      }
      value = "rows"
    }
  }
  metric_types = { for name in keys(local.log_metrics) : name => "logging.googleapis.com/user/ey_${name}" }
}

resource "google_logging_metric" "event" {
  for_each    = local.log_metrics
  name        = "ey_${each.key}"
  description = each.value.description
  filter = join("\n", compact([
    "(${local.platform_logs})",
    "jsonPayload.message=\"${each.value.event}\"",
    each.value.also,
  ]))

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = each.value.value == null ? "INT64" : "DISTRIBUTION"
    unit        = "1"
    dynamic "labels" {
      for_each = each.value.labels
      content {
        key         = labels.key
        value_type  = "STRING"
        description = labels.value
      }
    }
  }
  label_extractors = { for key in keys(each.value.labels) : key => "EXTRACT(jsonPayload.${key})" }
  value_extractor  = each.value.value == null ? null : "EXTRACT(jsonPayload.${each.value.value})"

  dynamic "bucket_options" {
    for_each = each.value.value == null ? [] : [each.value.value]
    content {
      exponential_buckets {
        num_finite_buckets = 24 # 1 to 16 million rows
        growth_factor      = 2
        scale              = 1
      }
    }
  }
}

# Who is told: each address, and the webhook when one is set.
resource "google_monitoring_notification_channel" "email" {
  for_each     = toset(var.alert_emails)
  display_name = "EY Data Platform on-call: ${each.key}"
  type         = "email"
  labels       = { email_address = each.key }
  user_labels  = local.labels
}

resource "google_monitoring_notification_channel" "webhook" {
  # Whether a webhook is set is no secret; its address is.
  count        = nonsensitive(var.alert_webhook_url == null) ? 0 : 1
  display_name = "EY Data Platform webhook"
  type         = "webhook_tokenauth"
  labels       = { url = var.alert_webhook_url }
  user_labels  = local.labels
}

locals {
  notification_channels = concat(
    [for channel in google_monitoring_notification_channel.email : channel.name],
    google_monitoring_notification_channel.webhook[*].name,
  )
  # How to run the CLI against this environment, for the runbooks below.
  cli = "with this environment's settings (`terraform -chdir=infra/terraform output settings`)"
  # One incident per kind of trouble. A discrete event (a failed run, a held day, a failed
  # check) is announced when it happens; the application announces its end, when a later
  # run succeeds. A state (a backlog, waiting dead letters, a stale source) is announced
  # when it starts and when it ends.
  alert_policies = {
    job_failed = {
      name     = "A job run failed"
      severity = "ERROR"
      subject  = "[${var.environment}] ey-platform $${metric.label.job} failed"
      prompts  = ["OPENED"]
      conditions = [{
        name    = "job.failed logged"
        filter  = "metric.type=\"${local.metric_types.job_failures}\""
        by      = ["metric.label.job"]
        aligner = "ALIGN_SUM"
        period  = "300s"
        above   = 0
      }]
      runbook = <<-EOT
        A run of `ey-platform $${metric.label.job}` logged `job.failed`; its `error` field says why.
        1. `ey-platform health` ${local.cli}: last run and status per job.
        2. The log line: `gcloud logging read 'jsonPayload.message="job.failed"' --limit 5`.
        3. batch or transform: once the cause is fixed, `gcloud run jobs execute ey-batch --region ${var.region} --wait` (or `ey-transform`); otherwise the next schedule runs it. poll or consume: the worker pool restarts the instance; `ey-platform stream status` shows whether events flow again.
      EOT
    }
    job_execution_failed = {
      name     = "A Cloud Run job execution failed"
      severity = "ERROR"
      subject  = "[${var.environment}] Cloud Run job $${resource.label.job_name} failed"
      prompts  = ["OPENED"]
      conditions = [{
        name    = "completed_execution_count, result failed"
        filter  = "metric.type=\"run.googleapis.com/job/completed_execution_count\" AND resource.type=\"cloud_run_job\" AND metric.labels.result=\"failed\" AND resource.labels.job_name=one_of(${join(", ", [for job in google_cloud_run_v2_job.job : "\"${job.name}\""])})"
        by      = ["resource.label.job_name"]
        aligner = "ALIGN_SUM"
        period  = "300s"
        above   = 0
      }]
      runbook = <<-EOT
        An execution of `$${resource.label.job_name}` ended failed after its retry, also when the process could not say so itself (out of memory, timeout, a bad image).
        1. `gcloud run jobs executions list --job $${resource.label.job_name} --region ${var.region} --limit 3`, then `gcloud run jobs executions describe EXECUTION --region ${var.region}`.
        2. `ey-platform health` ${local.cli}.
        3. Fix the cause (a release: roll back with `make rollback ENV=${var.environment} DIGEST=sha256:...`), then `gcloud run jobs execute $${resource.label.job_name} --region ${var.region} --wait`.
      EOT
    }
    batch_held = {
      name     = "A batch day was held"
      severity = "WARNING"
      subject  = "[${var.environment}] batch held: $${metric.label.entity}"
      prompts  = ["OPENED"]
      conditions = [{
        name    = "batch.held logged"
        filter  = "metric.type=\"${local.metric_types.batches_held}\""
        by      = ["metric.label.entity"]
        aligner = "ALIGN_SUM"
        period  = "300s"
        above   = 0
      }]
      runbook = <<-EOT
        A guard held the day of `$${metric.label.entity}`: the API answered far fewer rows than the last loaded day (EYP_BATCH__MIN_ROWS_FRACTION), or its fields drifted under EYP_BATCH__SCHEMA_POLICY=freeze. The warehouse still holds the previous day.
        1. `ey-platform health` ${local.cli}: the reason and the last quality results.
        2. Check the source API. If the drop or the new schema is real, load the day anyway: `ey-platform batch --date DAY --entity $${metric.label.entity} --force` (DAY: the held day, in the log line and in `ey-platform health`).
      EOT
    }
    quality_failed = {
      name     = "A data-quality check failed"
      severity = "WARNING"
      subject  = "[${var.environment}] quality check $${metric.label.check_name} $${metric.label.status}: $${metric.label.entity}"
      prompts  = ["OPENED"]
      conditions = [{
        name    = "quality.failed logged (freshness apart)"
        filter  = "metric.type=\"${local.metric_types.quality_failures}\" AND NOT metric.labels.check_name=\"freshness\""
        by      = ["metric.label.check_name", "metric.label.entity", "metric.label.status"]
        aligner = "ALIGN_SUM"
        period  = "300s"
        above   = 0
      }]
      runbook = <<-EOT
        Check `$${metric.label.check_name}` on `$${metric.label.entity}` ended `$${metric.label.status}`. Each result, with what was observed and expected, is in `${var.raw_dataset}._quality_results`.
        1. `ey-platform health` ${local.cli}: the last quality results.
        2. volume or schema: see "A batch day was held". A dbt test: `ey-platform transform` again once the data or the model is fixed; a failed test keeps the marts as they were.
      EOT
    }
    source_stale = {
      name     = "A source is stale"
      severity = "ERROR"
      subject  = "[${var.environment}] source stale: $${metric.label.entity}"
      prompts  = ["OPENED", "CLOSED"]
      conditions = [{
        # A warn is charted on the dashboard, never paged: carts_events, a stream that
        # lands changes only, warns after a quiet day and has no error limit.
        name   = "freshness failed (status fail)"
        filter = "metric.type=\"${local.metric_types.stale_sources}\" AND metric.labels.status=\"fail\""
        by     = ["metric.label.entity"]
        # Freshness is checked at each transform: a window longer than the six hours
        # between two keeps a source stale at consecutive checks one incident.
        aligner = "ALIGN_SUM"
        period  = "23400s"
        above   = 0
      }]
      runbook = <<-EOT
        dbt source freshness failed on `$${metric.label.entity}`: older than its error limit, or not measured (the `detail` of its row in `${var.raw_dataset}._quality_results` says why). A warn does not page: it is on the dashboard.
        1. `ey-platform health` ${local.cli}: freshness per source.
        2. products or users come from the daily batch: `gcloud run jobs executions list --job ey-batch --region ${var.region}`. carts_events has no error limit, so it fails only when not measured: the transform's logs (`gcloud run jobs executions list --job ey-transform --region ${var.region}`); the stream itself: `ey-platform stream status`, and `gcloud run worker-pools logs read ey-poller --region ${var.region}` (or `ey-consumer`).
        The incident closes when no transform has failed the source's freshness for six and a half hours.
      EOT
    }
    backlog = {
      name     = "The stream's backlog is old"
      severity = "ERROR"
      subject  = "[${var.environment}] oldest cart event waits over ${var.alert_backlog_age_minutes} min"
      prompts  = ["OPENED", "CLOSED"]
      conditions = [{
        name    = "oldest_unacked_message_age over ${var.alert_backlog_age_minutes} min"
        filter  = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.events.name}\""
        by      = []
        aligner = "ALIGN_MAX"
        period  = "60s"
        above   = var.alert_backlog_age_minutes * 60
      }]
      runbook = <<-EOT
        The oldest message of `${google_pubsub_subscription.events.name}` has waited more than ${var.alert_backlog_age_minutes} minutes (EYP_ALERTS__BACKLOG_AGE): the consumer is down, paused (`consumer_instances = 0`) or slower than the poller.
        1. `ey-platform stream status` ${local.cli}: backlog, oldest message, throughput.
        2. `gcloud run worker-pools describe ey-consumer --region ${var.region}` and `gcloud run worker-pools logs read ey-consumer --region ${var.region}`.
        3. A failing write is redelivered until it lands; more consumers (`consumer_instances`) drain a backlog faster.
      EOT
    }
    dead_letters = {
      name     = "Cart events were dead-lettered"
      severity = "WARNING"
      subject  = "[${var.environment}] dead letters in ${google_pubsub_subscription.dead_letters.name}"
      prompts  = ["OPENED", "CLOSED"]
      conditions = [
        {
          name    = "forwarded after ${var.max_delivery_attempts} deliveries"
          filter  = "metric.type=\"pubsub.googleapis.com/subscription/dead_letter_message_count\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.events.name}\""
          by      = []
          aligner = "ALIGN_SUM"
          period  = "300s"
          above   = 0
        },
        {
          name    = "waiting in the dead-letter subscription"
          filter  = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.dead_letters.name}\""
          by      = []
          aligner = "ALIGN_MAX"
          period  = "300s"
          above   = 0
        },
      ]
      runbook = <<-EOT
        Messages reached `${google_pubsub_topic.dead_letters.name}`: invalid events (the consumer's reason is the `dead_letter_reason` attribute) or events that failed ${var.max_delivery_attempts} deliveries.
        1. `ey-platform stream status` ${local.cli}: dead letters.
        2. `gcloud pubsub subscriptions pull ${google_pubsub_subscription.dead_letters.name} --limit 10` shows them with their attributes, without acknowledging.
        3. Fix the cause, then acknowledge what was handled (`--auto-ack`): the incident closes when the subscription is empty.
      EOT
    }
  }
}

resource "google_monitoring_alert_policy" "policy" {
  for_each              = local.alert_policies
  display_name          = "EY Data Platform: ${each.value.name}"
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = local.notification_channels
  user_labels           = local.labels

  dynamic "conditions" {
    for_each = each.value.conditions
    content {
      display_name = conditions.value.name
      condition_threshold {
        filter          = conditions.value.filter
        comparison      = "COMPARISON_GT"
        threshold_value = conditions.value.above
        duration        = "0s"
        # No point in the window (no event logged, no message waiting) is not a failure.
        evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
        aggregations {
          alignment_period     = conditions.value.period
          per_series_aligner   = conditions.value.aligner
          cross_series_reducer = length(conditions.value.by) == 0 ? null : "REDUCE_SUM"
          group_by_fields      = conditions.value.by
        }
      }
    }
  }

  alert_strategy {
    auto_close           = "1800s"
    notification_prompts = each.value.prompts
  }

  documentation {
    subject   = each.value.subject
    mime_type = "text/markdown"
    content   = each.value.runbook
  }

  # A policy on a log-based metric is refused until the metric exists.
  depends_on = [google_logging_metric.event]
}

# The dashboard: four sections (jobs, backlog, rows loaded, freshness) of charts, each
# section a header and a row of up to three charts.
locals {
  dashboard_sections = [
    {
      title    = "Jobs"
      subtitle = "Cloud Run job executions and the failures the platform logs"
      charts = [
        {
          title = "Job executions by result"
          xyChart = { dataSets = [{
            plotType = "STACKED_BAR"
            timeSeriesQuery = { timeSeriesFilter = {
              filter      = "metric.type=\"run.googleapis.com/job/completed_execution_count\" AND resource.type=\"cloud_run_job\""
              aggregation = { alignmentPeriod = "3600s", perSeriesAligner = "ALIGN_SUM", crossSeriesReducer = "REDUCE_SUM", groupByFields = ["resource.label.job_name", "metric.label.result"] }
            } }
          }] }
        },
        {
          title = "Failed runs (job.failed), by job"
          xyChart = { dataSets = [{
            plotType = "STACKED_BAR"
            timeSeriesQuery = { timeSeriesFilter = {
              filter      = "metric.type=\"${local.metric_types.job_failures}\""
              aggregation = { alignmentPeriod = "3600s", perSeriesAligner = "ALIGN_SUM", crossSeriesReducer = "REDUCE_SUM", groupByFields = ["metric.label.job"] }
            } }
          }] }
        },
        {
          title = "Held batch days (batch.held), by entity"
          xyChart = { dataSets = [{
            plotType = "STACKED_BAR"
            timeSeriesQuery = { timeSeriesFilter = {
              filter      = "metric.type=\"${local.metric_types.batches_held}\""
              aggregation = { alignmentPeriod = "3600s", perSeriesAligner = "ALIGN_SUM", crossSeriesReducer = "REDUCE_SUM", groupByFields = ["metric.label.entity"] }
            } }
          }] }
        },
      ]
    },
    {
      title    = "Backlog"
      subtitle = "The subscription ${var.subscription} and the dead letters"
      charts = [
        {
          title = "Oldest unacknowledged message (seconds)"
          xyChart = {
            dataSets = [{
              plotType = "LINE"
              timeSeriesQuery = { timeSeriesFilter = {
                filter      = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${var.subscription}\""
                aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MAX" }
              } }
            }]
            thresholds = [{ label = "alert", value = var.alert_backlog_age_minutes * 60 }]
          }
        },
        {
          title = "Messages waiting"
          xyChart = { dataSets = [{
            plotType = "LINE"
            timeSeriesQuery = { timeSeriesFilter = {
              filter      = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${var.subscription}\""
              aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MEAN" }
            } }
          }] }
        },
        {
          title = "Dead letters waiting"
          xyChart = { dataSets = [{
            plotType = "LINE"
            timeSeriesQuery = { timeSeriesFilter = {
              filter      = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${var.dead_letter_topic}-sub\""
              aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MAX" }
            } }
          }] }
        },
      ]
    },
    {
      title    = "Rows loaded"
      subtitle = "What each batch load put in the warehouse (batch.load)"
      charts = [
        {
          # A distribution's total is its _sum series, which only PromQL reads.
          title = "Rows loaded in the past day, by entity"
          xyChart = { dataSets = [{
            plotType        = "STACKED_BAR"
            timeSeriesQuery = { prometheusQuery = "sum by (entity) (increase(logging_googleapis_com:user_ey_rows_loaded_sum[1d]))" }
          }] }
        },
        {
          title = "Loads in the past day, by entity and status"
          xyChart = { dataSets = [{
            plotType        = "STACKED_BAR"
            timeSeriesQuery = { prometheusQuery = "sum by (entity, status) (increase(logging_googleapis_com:user_ey_rows_loaded_count[1d]))" }
          }] }
        },
      ]
    },
    {
      title    = "Freshness"
      subtitle = "dbt source freshness and the other quality checks, at each transform"
      charts = [
        {
          title = "Stale sources, by source and status"
          xyChart = { dataSets = [{
            plotType = "STACKED_BAR"
            timeSeriesQuery = { timeSeriesFilter = {
              filter      = "metric.type=\"${local.metric_types.stale_sources}\""
              aggregation = { alignmentPeriod = "3600s", perSeriesAligner = "ALIGN_SUM", crossSeriesReducer = "REDUCE_SUM", groupByFields = ["metric.label.entity", "metric.label.status"] }
            } }
          }] }
        },
        {
          title = "Failed quality checks, by check and status"
          xyChart = { dataSets = [{
            plotType = "STACKED_BAR"
            timeSeriesQuery = { timeSeriesFilter = {
              filter      = "metric.type=\"${local.metric_types.quality_failures}\""
              aggregation = { alignmentPeriod = "3600s", perSeriesAligner = "ALIGN_SUM", crossSeriesReducer = "REDUCE_SUM", groupByFields = ["metric.label.check_name", "metric.label.status"] }
            } }
          }] }
        },
        {
          title = "What to do"
          text = {
            format  = "MARKDOWN"
            content = "Freshness per source, the last quality results and each job's last run: `ey-platform health` with this environment's settings. Every result is in `${var.raw_dataset}._quality_results`."
          }
        },
      ]
    },
  ]
  # 48 columns; a section is a header two rows high over a row of charts 16 by 16.
  dashboard = {
    displayName = "EY Data Platform"
    mosaicLayout = {
      columns = 48
      tiles = flatten([
        for i, section in local.dashboard_sections : concat(
          [{
            xPos   = 0
            yPos   = i * 18
            width  = 48
            height = 2
            widget = { title = section.title, sectionHeader = { subtitle = section.subtitle, dividerBelow = true } }
          }],
          [for j, chart in section.charts : { xPos = j * 16, yPos = i * 18 + 2, width = 16, height = 16, widget = chart }],
        )
      ])
    }
  }
}

resource "google_monitoring_dashboard" "platform" {
  dashboard_json = jsonencode(local.dashboard)
  depends_on     = [google_logging_metric.event]
}
