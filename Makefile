# awa — PGXS build. The version lives in awa.control only.
EXTENSION    = awa
EXTVERSION   = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" awa.control)

MODULE_big   = awa
# Every C file of src/ and every test file is picked up by name.
OBJS         = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

DATA         = $(wildcard awa--*.sql)

REGRESS      = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --load-extension=plpgsql

ISOLATION      = $(sort $(basename $(notdir $(wildcard test/isolation/specs/*.spec))))
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
