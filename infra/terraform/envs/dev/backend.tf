# State for dev: terraform init -backend-config="bucket=<state bucket>"
terraform {
  backend "gcs" {
    prefix = "controlroom/dev"
  }
}
