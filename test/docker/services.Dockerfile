# The images the Docker test (test/install/docker.test.ts) runs beside scannode's where no registry is reachable:
# PostgreSQL and haproxy from Debian's packages, on the base made from the cached debootstrap root. The entrypoint
# keeps the contract of the upstream postgres image that docker/compose.yml is written for (POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB, PGDATA; `postgres ARGS`) and runs any other command as given (haproxy ...).
# A site with a registry uses the upstream postgres and haproxy images instead.
ARG BASE=scannode-ci-base:unset
FROM ${BASE}
# No service is started while packages are configured (policy-rc.d), and no default cluster is made: the entrypoint
# makes its own in PGDATA. The base's apt sources are the mirror debootstrap used.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
 && mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \
 && apt-get -o Acquire::Check-Valid-Until=false update \
 && apt-get install -y --no-install-recommends postgresql haproxy \
 && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d \
 && ln -s "$(ls -d /usr/lib/postgresql/*/bin | tail -n1)" /usr/lib/postgresql/bin
ENV PATH=/usr/lib/postgresql/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
