# The AWS half of the HA VPN between the Google VPC and the AWS VPC (Google's documented
# Google Cloud <-> AWS topology): one customer gateway per interface of Google's HA VPN
# gateway, a virtual private gateway attached to the VPC, and two VPN connections (four
# tunnels, BGP). Routes learnt over BGP are propagated into the given route tables. The
# Google half is modules/gcp_vpn; the pre-shared keys come from the caller (random_password),
# sensitive and never output.

variable "prefix" {
  description = "Name prefix for this environment."
  type        = string
}

variable "vpc_id" {
  description = "The AWS VPC where the RDS Proxy and Aurora live."
  type        = string
}

variable "route_table_ids" {
  description = "Route tables of the proxy's subnets: routes to the Google ranges are propagated into them."
  type        = list(string)
}

variable "amazon_side_asn" {
  description = "Private ASN of the virtual private gateway."
  type        = number
  default     = 64512
}

variable "google_asn" {
  description = "Private ASN of the Google Cloud Router (the customer gateways' BGP ASN)."
  type        = number
}

variable "google_interface_ips" {
  description = "The two public addresses of Google's HA VPN gateway (interface 0, interface 1)."
  type        = list(string)
  validation {
    condition     = length(var.google_interface_ips) == 2
    error_message = "google_interface_ips: the HA VPN gateway has exactly two interfaces."
  }
}

variable "tunnel_inside_cidrs" {
  description = "Four /30 link-local ranges inside 169.254.0.0/16 for the tunnels' BGP sessions (connection 0 tunnels 1 and 2, then connection 1)."
  type        = list(string)
  default     = ["169.254.10.0/30", "169.254.11.0/30", "169.254.12.0/30", "169.254.13.0/30"]
  validation {
    condition     = length(var.tunnel_inside_cidrs) == 4 && alltrue([for c in var.tunnel_inside_cidrs : can(cidrnetmask(c)) && startswith(c, "169.254.") && endswith(c, "/30")])
    error_message = "tunnel_inside_cidrs: four /30 ranges inside 169.254.0.0/16."
  }
}

variable "preshared_keys" {
  description = "Four pre-shared keys (8-64 letters, digits, '.' or '_', not starting with 0), one per tunnel, in tunnel_inside_cidrs order."
  type        = list(string)
  sensitive   = true
  validation {
    condition     = length(var.preshared_keys) == 4
    error_message = "preshared_keys: one per tunnel, four in all."
  }
}

resource "aws_vpn_gateway" "vpn" {
  vpc_id          = var.vpc_id
  amazon_side_asn = var.amazon_side_asn
  tags            = { Name = "${var.prefix}-controlroom-google" }
}

resource "aws_vpn_gateway_route_propagation" "google" {
  count          = length(var.route_table_ids) # ids may be unknown until the VPC's own apply
  vpn_gateway_id = aws_vpn_gateway.vpn.id
  route_table_id = var.route_table_ids[count.index]
}

resource "aws_customer_gateway" "google" {
  count      = 2
  bgp_asn    = var.google_asn
  ip_address = var.google_interface_ips[count.index]
  type       = "ipsec.1"
  tags       = { Name = "${var.prefix}-controlroom-google-${count.index}" }
}

resource "aws_vpn_connection" "google" {
  count                 = 2
  vpn_gateway_id        = aws_vpn_gateway.vpn.id
  customer_gateway_id   = aws_customer_gateway.google[count.index].id
  type                  = "ipsec.1"
  static_routes_only    = false
  tunnel1_inside_cidr   = var.tunnel_inside_cidrs[2 * count.index]
  tunnel2_inside_cidr   = var.tunnel_inside_cidrs[2 * count.index + 1]
  tunnel1_preshared_key = var.preshared_keys[2 * count.index]
  tunnel2_preshared_key = var.preshared_keys[2 * count.index + 1]
  tunnel1_ike_versions  = ["ikev2"]
  tunnel2_ike_versions  = ["ikev2"]
  tags                  = { Name = "${var.prefix}-controlroom-google-${count.index}" }
}

locals {
  # in the order Google's external gateway numbers its four interfaces
  tunnels = flatten([for c in aws_vpn_connection.google : [
    { address = c.tunnel1_address, aws_inside = c.tunnel1_vgw_inside_address, google_inside = c.tunnel1_cgw_inside_address },
    { address = c.tunnel2_address, aws_inside = c.tunnel2_vgw_inside_address, google_inside = c.tunnel2_cgw_inside_address },
  ]])
}

output "tunnels" {
  description = "Per tunnel, in order: AWS's outside address and both BGP inside addresses."
  value       = local.tunnels
}

output "amazon_side_asn" {
  description = "ASN of the virtual private gateway (the Google BGP peers' peer_asn)."
  value       = aws_vpn_gateway.vpn.amazon_side_asn
}
