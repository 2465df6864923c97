# An example authorization policy for Ironcrest's gateway (docs/gateway.md, "Authorization").
#
# Configure it with:
#   gateway:
#     policy:
#       files: [deploy/policy/ironcrest.rego]
#       data: [deploy/policy/data.yaml]
#       allow: data.ironcrest.allow
#       reason: data.ironcrest.reason
#
# input: user, client_id, scopes, groups, system, family, method, path, params, client_ip.
# data.ironcrest (data.yaml): systems.<name>.groups (who may use it) and read_only_clients.
package ironcrest

default allow := false

# Route families that only read: a read-only client may use these and no other.
read_families := {"status-read", "compute-read", "filesystem-read"}

allow if {
	member_of_system
	not read_only_violation
}

# One of the caller's groups is among the system's allowed groups.
member_of_system if {
	some group in input.groups
	group in data.ironcrest.systems[input.system].groups
}

read_only_violation if {
	input.client_id in data.ironcrest.read_only_clients
	not input.family in read_families
}

reason := sprintf("Client %s is read-only; %s requests are not allowed.", [input.client_id, input.family]) if {
	member_of_system
	read_only_violation
} else := sprintf("User %s is in none of the groups allowed on system %s.", [input.user, input.system]) if {
	not member_of_system
}
