# awa — PGXS build. The version lives in awa.control only.
EXTENSION    = awa
EXTVERSION   = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" awa.control)

MODULE_big   = awa
# Every C file of src/ and every test file is picked up by name.
OBJS         = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# SQL scripts (docs/releasing.md).  Built from src/sql/: the install script of
# this version (src/sql/awa.sql) and the upgrade script into it
# (src/sql/awa--A--B.sql), each followed by src/sql/privileges.sql (both then by
# src/sql/engine.sql, src/sql/engine_deps.sql and src/sql/engine_batch.sql:
# which engine the database uses).  Released,
# committed and never changed: the first release's install script, which
# PostgreSQL chains the upgrades from to install any older version, and the
# upgrade scripts between released versions.
DATA_built   = $(EXTENSION)--$(EXTVERSION).sql $(notdir $(wildcard src/sql/$(EXTENSION)--*--*.sql))
DATA         = awa--0.1.0.sql awa--0.1.0--0.2.0.sql
# The router extension (docs/sharding.md): awa's API in a database of its own,
# each call sent to the shard holding its jobs with PL/Proxy.  SQL only.
DATA        += router/awa_router.control $(wildcard router/awa_router--*.sql)

REGRESS      = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --load-extension=plpgsql

ISOLATION      = $(sort $(basename $(notdir $(wildcard test/isolation/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test/isolation

# TAP tests (test/t/*.pl, PostgreSQL::Test::Cluster): each starts servers of its own on free
# ports, so they run as a user initdb accepts (not root).  `make installcheck` runs them after
# pg_regress and isolation; `make prove_installcheck` runs them alone (no running server needed).
TAP_TESTS    = 1
PROVE_TESTS  = $(sort $(wildcard test/t/*.pl))

PG_CPPFLAGS  = -I$(srcdir)/src
PG_CFLAGS    = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare

EXTRA_CLEAN  = results output_iso output_iso_table regression.diffs regression.out

PG_CONFIG   ?= pg_config
PGXS        := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Headers: every object is rebuilt when any header of src/ changes (PostgreSQL's
# own dependency tracking needs a server built with --enable-depend; Debian's is
# not).  A layout change in shmem.h seen by only some objects would corrupt
# shared memory.
$(OBJS): $(wildcard src/*.h) src/job_state.def

.PHONY: prove_installcheck
prove_installcheck:
	$(prove_installcheck)

.PHONY: version
version:
	@echo $(EXTVERSION)

$(EXTENSION)--$(EXTVERSION).sql: src/sql/$(EXTENSION).sql src/sql/privileges.sql src/sql/engine.sql src/sql/engine_deps.sql src/sql/engine_batch.sql
	{ echo '-- Built by make from $^.'; cat $^; } > $@.tmp && mv $@.tmp $@

# The upgrade script into this version ends as the install script does (src/sql/engine.sql: with the ring engine
# chosen, the jobs move into the ring and awa.jobs becomes its view), so that an upgraded database is a fresh one.
$(EXTENSION)--%--$(EXTVERSION).sql: src/sql/$(EXTENSION)--%--$(EXTVERSION).sql src/sql/privileges.sql src/sql/engine.sql src/sql/engine_deps.sql src/sql/engine_batch.sql
	{ echo '-- Built by make from $^.'; cat $^; } > $@.tmp && mv $@.tmp $@

$(EXTENSION)--%.sql: src/sql/$(EXTENSION)--%.sql src/sql/privileges.sql
	{ echo '-- Built by make from $^.'; cat $^; } > $@.tmp && mv $@.tmp $@
