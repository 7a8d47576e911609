# A monthly budget on this environment's project, when its billing account is set. It
# is here and not in the platform because creating it takes billing.budgets.create on
# the billing account (Billing Account Administrator or Costs Manager): the owner who
# applies this configuration holds that, the CI deployer must not. A budget only
# notifies: it stops nothing. Its thresholds go to the billing account's administrators
# and users, the project's owners and budget_emails; spend forecast past the budget is
# told before it happens.
locals {
  budget_thresholds = [
    { percent = 0.5, basis = "CURRENT_SPEND" },
    { percent = 0.9, basis = "CURRENT_SPEND" },
    { percent = 1.0, basis = "CURRENT_SPEND" },
    { percent = 1.0, basis = "FORECASTED_SPEND" },
  ]
}

data "google_project" "this" {
  project_id = var.project
}

# Channels of the budget's own, so that it needs nothing the platform creates later.
resource "google_monitoring_notification_channel" "budget" {
  for_each     = var.billing_account == "" ? toset([]) : toset(var.budget_emails)
  display_name = "EY Data Platform budget: ${each.key}"
  type         = "email"
  labels       = { email_address = each.key }
  user_labels  = local.labels
  depends_on   = [google_project_service.enabled]
}

resource "google_billing_budget" "monthly" {
  # The Budget API bills its calls to a quota project (versions.tf).
  provider        = google.billing
  count           = var.billing_account == "" ? 0 : 1
  billing_account = var.billing_account
  # The budget lives on the billing account, beside other projects' budgets: its name
  # says which project it watches.
  display_name = "EY Data Platform ${var.project}"

  budget_filter {
    projects               = ["projects/${data.google_project.this.number}"]
    calendar_period        = "MONTH"
    credit_types_treatment = "INCLUDE_ALL_CREDITS"
  }

  amount {
    specified_amount {
      units = tostring(var.monthly_budget) # in the billing account's currency
    }
  }

  dynamic "threshold_rules" {
    for_each = local.budget_thresholds
    content {
      threshold_percent = threshold_rules.value.percent
      spend_basis       = threshold_rules.value.basis
    }
  }

  all_updates_rule {
    monitoring_notification_channels = [for channel in google_monitoring_notification_channel.budget : channel.name]
    disable_default_iam_recipients   = false # the billing account's administrators and users
    enable_project_level_recipients  = true  # and the project's owners
  }

  depends_on = [google_project_service.enabled]
}
