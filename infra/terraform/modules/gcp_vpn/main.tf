# The Google half of the HA VPN to the AWS VPC (Google's documented Google Cloud <-> AWS
# topology, 99.99% SLA): an HA VPN gateway with two interfaces, a Cloud Router with its own
# ASN, an external VPN gateway with AWS's four tunnel addresses (FOUR_IPS_REDUNDANCY), four
# tunnels (IKEv2) and a BGP session on each. The router advertises the VPC's subnets and the
# serverless connector's range (not a subnet, so it is advertised explicitly); AWS propagates
# them into its route tables (modules/aws_vpn). Serverless egress reaches the AWS ranges
# through the connector with PRIVATE_RANGES_ONLY, which covers RFC 1918 ranges such as the
# AWS VPC's.

variable "project" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Google Cloud region (the gateway's and the router's)."
  type        = string
}

variable "prefix" {
  description = "Name prefix for this environment."
  type        = string
}

variable "network" {
  description = "Self link of the Google VPC network the serverless connector attaches to."
  type        = string
}

variable "google_asn" {
  description = "Private ASN of the Cloud Router (64512-65534, different from AWS's)."
  type        = number
  default     = 65010
}

variable "advertised_ranges" {
  description = "Ranges advertised to AWS besides the VPC's subnets: the serverless connector's range."
  type        = list(string)
}

variable "aws_tunnels" {
  description = "From modules/aws_vpn: per tunnel, in order, AWS's outside address and both BGP inside addresses."
  type = list(object({
    address       = string
    aws_inside    = string
    google_inside = string
  }))
}

variable "aws_asn" {
  description = "ASN of AWS's virtual private gateway."
  type        = number
}

variable "preshared_keys" {
  description = "The four tunnels' pre-shared keys, in aws_tunnels order (the same as AWS's)."
  type        = list(string)
  sensitive   = true
}

resource "google_compute_ha_vpn_gateway" "aws" {
  project = var.project
  region  = var.region
  name    = "${var.prefix}-aws"
  network = var.network
}

resource "google_compute_router" "aws" {
  project = var.project
  region  = var.region
  name    = "${var.prefix}-aws"
  network = var.network
  bgp {
    asn               = var.google_asn
    advertise_mode    = "CUSTOM"
    advertised_groups = ["ALL_SUBNETS"]
    dynamic "advertised_ip_ranges" {
      for_each = var.advertised_ranges
      content {
        range = advertised_ip_ranges.value
      }
    }
  }
}

resource "google_compute_external_vpn_gateway" "aws" {
  project         = var.project
  name            = "${var.prefix}-aws"
  redundancy_type = "FOUR_IPS_REDUNDANCY"
  description     = "AWS virtual private gateway: two VPN connections, two tunnels each"
  dynamic "interface" {
    for_each = range(4)
    content {
      id         = interface.value
      ip_address = var.aws_tunnels[interface.value].address
    }
  }
}

resource "google_compute_vpn_tunnel" "aws" {
  count                           = 4
  project                         = var.project
  region                          = var.region
  name                            = "${var.prefix}-aws-${count.index}"
  vpn_gateway                     = google_compute_ha_vpn_gateway.aws.id
  vpn_gateway_interface           = floor(count.index / 2) # AWS connection 0 faces interface 0
  peer_external_gateway           = google_compute_external_vpn_gateway.aws.id
  peer_external_gateway_interface = count.index
  shared_secret                   = var.preshared_keys[count.index]
  router                          = google_compute_router.aws.id
  ike_version                     = 2
}

resource "google_compute_router_interface" "aws" {
  count      = 4
  project    = var.project
  region     = var.region
  name       = "${var.prefix}-aws-${count.index}"
  router     = google_compute_router.aws.name
  ip_range   = "${var.aws_tunnels[count.index].google_inside}/30"
  vpn_tunnel = google_compute_vpn_tunnel.aws[count.index].name
}

resource "google_compute_router_peer" "aws" {
  count                     = 4
  project                   = var.project
  region                    = var.region
  name                      = "${var.prefix}-aws-${count.index}"
  router                    = google_compute_router.aws.name
  interface                 = google_compute_router_interface.aws[count.index].name
  peer_ip_address           = var.aws_tunnels[count.index].aws_inside
  peer_asn                  = var.aws_asn
  advertised_route_priority = 100
}

output "interface_ips" {
  description = "The HA VPN gateway's two public addresses (AWS's customer gateways)."
  value       = [for id in [0, 1] : one([for i in google_compute_ha_vpn_gateway.aws.vpn_interfaces : i.ip_address if i.id == id])]
}

output "tunnels" {
  description = "The four tunnels' names (their status is in the console and monitoring)."
  value       = google_compute_vpn_tunnel.aws[*].name
}
