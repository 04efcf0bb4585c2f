# awa — PGXS build. The version lives in awa.control only.
EXTENSION    = awa
EXTVERSION   = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" awa.control)

MODULE_big   = awa
OBJS         = src/awa.o src/spi_util.o src/insert.o src/lifecycle.o src/stats.o src/wake.o

DATA         = $(wildcard awa--*.sql)

REGRESS      = core_insert core_lifecycle core_stats
REGRESS_OPTS = --load-extension=plpgsql

ISOLATION      = notify
ISOLATION_OPTS = --inputdir=test/isolation

PG_CPPFLAGS  = -I$(srcdir)/src
PG_CFLAGS    = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare

EXTRA_CLEAN  = results output_iso regression.diffs regression.out

PG_CONFIG   ?= pg_config
PGXS        := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

.PHONY: version
version:
	@echo $(EXTVERSION)
