#!/bin/sh
# Apache Kafka for gpufleet: one KRaft node (broker + controller) where every client authenticates with
# SASL/SCRAM-SHA-512 and the StandardAuthorizer denies whatever no ACL allows. The compose `kafka` service
# runs this in the apache/kafka image instead of the image's own start script (which cannot bootstrap a
# SCRAM user); the ACLs and the services' users come from the `kafka-setup` job (acls.sh).
#
#   listener CLIENTS     :9092, SASL_PLAINTEXT, SCRAM-SHA-512: services, agents, the operator, and the
#                        broker itself (inter-broker). Put TLS in front (SASL_SSL) off a private network.
#   listener CONTROLLER  localhost:9093 only, SASL_PLAINTEXT, PLAIN with a static JAAS user: the node's
#                        broker talking to its own controller (SCRAM cannot be used there).
#   super user           User:admin alone; its SCRAM credential is written into the metadata log when the
#                        storage is formatted (KIP-900), so it exists before the broker serves anyone.
#
# A data volume formatted before SASL was configured has no admin credential: start from a new volume.
set -eu
: "${KAFKA_ADMIN_PASSWORD:?set KAFKA_ADMIN_PASSWORD}"
: "${KAFKA_CLUSTER_ID:?set KAFKA_CLUSTER_ID (kafka-storage.sh random-uuid)}"
: "${KAFKA_ADVERTISED_HOST:=kafka}"
CONF=/tmp/gpufleet-kafka
umask 077
mkdir -p "$CONF"

cat > "$CONF/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=CLIENTS://:9092,CONTROLLER://localhost:9093
advertised.listeners=CLIENTS://${KAFKA_ADVERTISED_HOST}:9092
listener.security.protocol.map=CLIENTS:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=CLIENTS
controller.listener.names=CONTROLLER
listener.name.clients.sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.clients.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${KAFKA_ADMIN_PASSWORD}";
listener.name.controller.sasl.enabled.mechanisms=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="${KAFKA_ADMIN_PASSWORD}" user_admin="${KAFKA_ADMIN_PASSWORD}";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin
log.dirs=/var/lib/kafka/data
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
EOF

# The health check's client configuration (the admin principal; this container only).
cat > "$CONF/admin.properties" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${KAFKA_ADMIN_PASSWORD}";
EOF

/opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t "$KAFKA_CLUSTER_ID" -c "$CONF/server.properties" \
  --add-scram "SCRAM-SHA-512=[name=admin,password=${KAFKA_ADMIN_PASSWORD}]"
exec /opt/kafka/bin/kafka-server-start.sh "$CONF/server.properties"
