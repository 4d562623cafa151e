# State for prod: terraform init -backend-config="bucket=<state bucket>"
terraform {
  backend "gcs" {
    prefix = "controlroom/prod"
  }
}
