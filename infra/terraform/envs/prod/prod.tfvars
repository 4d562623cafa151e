# Example values for prod: replace every <...> placeholder. No secrets here or in any
# variable: terraform generates what it can; the Twitch and OIDC client secrets (and the SMTP
# password) are added once with `gcloud secrets versions add` (docs/deploy.md, "First
# deployment"), and given_secret_versions (default: version 1 of each) pins what the
# services read. realtime_image comes from CI (-var realtime_image=...@sha256:...).
project           = "<prod-project-id>"
region            = "europe-west1"
aws_region        = "eu-west-1"
github_repository = "<owner>/<repository>"

# Google network: the VPC Memorystore, the connector and the HA VPN attach to, and a free /28
network        = "projects/<prod-project-id>/global/networks/<vpc-name>"
connector_cidr = "10.9.0.0/28"

# the database: "aurora" (AWS, over the HA VPN) or "cloud_sql" (Google only)
database_engine = "aurora"
# AWS network (aurora only): the VPC, its private range, two private subnets in two zones and
# their route tables
aws_vpc_id          = "vpc-<id>"
aws_vpc_cidr        = "10.30.0.0/16"
aws_subnet_ids      = ["subnet-<zone-a>", "subnet-<zone-b>"]
aws_route_table_ids = ["rtb-<id>"]
# a second environment in the same AWS account reuses GitHub's OIDC provider
aws_create_github_oidc_provider = true

database_max_capacity  = 16
realtime_min_instances = 2
realtime_max_instances = 20

public_url            = "https://controlroom.example.com"
dashboard_origins     = ["https://controlroom.example.com"]
eventsub_callback_url = "https://europe-west1-<prod-project-id>.cloudfunctions.net/cr-prod-webhook"
twitch_client_id      = "<twitch-client-id>"
oidc_issuer           = "https://accounts.google.com"
oidc_client_id        = "<oidc-client-id>"
oidc_provider_name    = "Google"

smtp_host     = ""
smtp_username = ""
smtp_from     = ""

# where alerts (Google Cloud Monitoring) and alarms (CloudWatch) are mailed
alert_emails = ["<on-call@agency.example>"]
