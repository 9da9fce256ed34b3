# wxhw — build, test, bench, install.
#   make run             the main job (README), against the built-in emulator
#   make                 build build/5.4/wxhw/core.so against Lua 5.4
#   make LUA=luajit      build build/luajit/wxhw/core.so against LuaJIT 2.1 (OpenResty)
#   make test            busted specs under Lua 5.4 and, where present, LuaJIT
#   make check           specs against an ASan+UBSan build, C-heavy specs under valgrind
#   make dist            build/dist/wxhw-VERSION-1.src.rock, installable offline with luarocks
#   make bench | fuzz | install PREFIX=... [LUA=luajit] | lint (luacheck, rockspec) | clean

LUA      ?= 5.4
comma    := ,
PREFIX   ?= /usr/local
CC       ?= cc
SAN      ?=

# LuaRocks passes LUA_INCDIR (the headers of the Lua it builds for, e.g. /usr/include/
# luajit-2.1 or OpenResty's); the ABI then comes from that lua.h and the objects go to
# build/rock-*, so a rock build never mixes with the checkout's own builds.
ifneq ($(LUA_INCDIR),)
  ifeq ($(wildcard $(LUA_INCDIR)/lua.h),)
    $(error no lua.h in LUA_INCDIR=$(LUA_INCDIR): for LuaJIT pass LUA_INCDIR=/usr/include/luajit-2.1 (Debian libluajit2-5.1-dev), for OpenResty luarocks --lua-dir=/usr/local/openresty/luajit)
  endif
  LUA_NUM  := $(shell sed -n 's/^\#define[[:space:]]*LUA_VERSION_NUM[[:space:]]*\([0-9]*\).*/\1/p' $(LUA_INCDIR)/lua.h)
  override LUA := $(if $(filter 501,$(LUA_NUM)),luajit,5.4)
endif

ifneq ($(filter luajit 5.1,$(LUA)),)
  LUA_PC   := luajit
  LUA_ABI  := 5.1
  LUA_EXE  := luajit
else
  LUA_PC   := lua5.4
  LUA_ABI  := 5.4
  LUA_EXE  := lua5.4
endif

# Test hooks (functions only specs call: kvshm _test_die_holding_lock, crypto
# _openssl_error_pending) are compiled into the checkout's builds, which spec/run
# loads, and never into what users get: a rock build (LUA_INCDIR) or RELEASE=1,
# which `make install` builds in build/<lua>-release.
ifneq ($(LUA_INCDIR),)
  RELEASE := 1
endif
HOOKS    := $(if $(RELEASE),,-DWXHW_TEST_HOOKS)
BUILD    := build/$(if $(LUA_INCDIR),rock-)$(LUA)$(if $(SAN),-san)$(if $(LUA_INCDIR),,$(if $(RELEASE),-release))
CORE     := $(BUILD)/wxhw/core.so

PKGS     := libcrypto libcurl hiredis
WARN     := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wcast-qual \
            -Wmissing-prototypes -Wstrict-prototypes -Wvla -Wformat=2
SANFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address$(comma)undefined -fno-sanitize-recover=undefined
# CFLAGS and LIBFLAG are the user's (or LuaRocks') choice; what the code needs is added.
CFLAGS   ?= -O2 -g
LIBFLAG  ?= -shared
WX_CFLAGS = $(CFLAGS) $(if $(SAN),$(SANFLAGS)) -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden $(WARN) \
            $(HOOKS) -Icsrc $(if $(LUA_INCDIR),-I$(LUA_INCDIR))
LDFLAGS  += $(LIBFLAG) $(if $(SAN),-fsanitize=address$(comma)undefined)

# Library flags come from pkg-config when the build runs, i.e. after bin/bootstrap
# (never when make reads this file): a lookup that fails stops the build before
# anything links and removes core.so. Each file is rewritten only when it changes.
PC_PKGS  := $(PKGS) $(if $(LUA_INCDIR),,$(LUA_PC))
PC_FILES := $(BUILD)/pkg-config.cflags $(BUILD)/pkg-config.libs
# goals that run bin/bootstrap: the lookup waits for it, also under make -j
BOOTSTRAP_FIRST := $(if $(filter bootstrap run demo,$(MAKECMDGOALS)),bootstrap) \
                   $(if $(filter bootstrap-test test check bench fuzz lint,$(MAKECMDGOALS)),bootstrap-test)

SRCS     := $(wildcard csrc/*.c) $(wildcard csrc/*/*.c)
OBJS     := $(SRCS:%.c=$(BUILD)/obj/%.o)
DEPS     := $(OBJS:.o=.d)

ROCKSPEC := $(wildcard wxhw-*.rockspec)
VERSION  := $(shell sed -n 's/^version *= *"\(.*\)-[0-9]*"/\1/p' $(ROCKSPEC))
DIST     := build/dist

.PHONY: all test check bench fuzz install lint clean bootstrap bootstrap-test demo run dist FORCE
.DELETE_ON_ERROR:

all: $(CORE)

$(CORE): $(OBJS) $(BUILD)/pkg-config.libs
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $(OBJS) $$(cat $(BUILD)/pkg-config.libs) -lpthread -lm

$(BUILD)/obj/%.o: %.c $(BUILD)/pkg-config.cflags
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(WX_CFLAGS) $$(cat $(BUILD)/pkg-config.cflags) -MMD -MP -c -o $@ $<

$(PC_FILES) &: FORCE | $(BOOTSTRAP_FIRST)
	@mkdir -p $(BUILD)
	@missing="" debs=""; for p in $(PC_PKGS); do pkg-config --exists $$p && continue; missing="$$missing $$p"; \
	  case $$p in libcrypto) d=libssl-dev;; libcurl) d=libcurl4-openssl-dev;; hiredis) d=libhiredis-dev;; \
	    lua5.4) d=liblua5.4-dev;; luajit) d=libluajit2-5.1-dev;; *) d=$$p;; esac; debs="$$debs $$d"; done; \
	if [ -n "$$missing" ]; then \
	  rm -f $(CORE) $(PC_FILES); \
	  echo "wxhw: pkg-config cannot find:$$missing (Debian:$$debs)." >&2; \
	  echo "wxhw: install them with bin/bootstrap (make run and make test call it), then run make again." >&2; \
	  exit 1; \
	fi; \
	pkg-config --cflags $(PC_PKGS) >$(BUILD)/pkg-config.cflags.new && \
	pkg-config --libs $(PKGS) >$(BUILD)/pkg-config.libs.new || exit 1; \
	for f in $(PC_FILES); do cmp -s $$f.new $$f && rm -f $$f.new || mv -f $$f.new $$f; done

FORCE:

-include $(DEPS)

# `make run` needs only the build and run-time packages; the test toolchain
# (LuaJIT, busted, nginx, Redis, valgrind, ...) comes with the targets that use it.
BOOTSTRAP ?= bin/bootstrap
bootstrap:
	@$(BOOTSTRAP)

bootstrap-test:
	@$(BOOTSTRAP) --test

demo: bootstrap all
	@bin/wxhw demo

# The main job (README): provision the example factory list on every platform
# against the built-in emulator; the factory manifest lands in build/run/.
RUN_INPUT ?= examples/devices.csv
run: bootstrap all
	@mkdir -p build/run
	@bin/wxhw provision $(RUN_INPUT) --product Lamp --model-name LampModel --wmpf --groups --wecom \
	  --state-dir build/run/.wxhw --out build/run/manifest.csv $(RUN_ARGS)

test: bootstrap-test
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory LUA=luajit all
	@spec/run

check: bootstrap-test
	@$(MAKE) --no-print-directory SAN=1 all
	@spec/run --sanitize; a=$$?; spec/run --valgrind; b=$$?; [ $$a -eq 0 ] && [ $$b -eq 0 ]

bench: bootstrap-test all
	@bench/run

fuzz: bootstrap-test
	@$(MAKE) --no-print-directory -C fuzz

INSTALL_LIB   ?= $(PREFIX)/lib/lua/$(LUA_ABI)
INSTALL_SHARE ?= $(PREFIX)/share/lua/$(LUA_ABI)
INSTALL_BIN   ?= $(PREFIX)/bin

ifeq ($(RELEASE),)
install:
	@$(MAKE) --no-print-directory RELEASE=1 install
else
install: all
	install -d $(DESTDIR)$(INSTALL_LIB)/wxhw $(DESTDIR)$(INSTALL_SHARE) $(DESTDIR)$(INSTALL_BIN)
	install -m 0755 $(CORE) $(DESTDIR)$(INSTALL_LIB)/wxhw/core.so
	cd lua && find wxhw -name '*.lua' -exec install -D -m 0644 {} $(DESTDIR)$(INSTALL_SHARE)/{} \;
	sed '1s|.*|#!/usr/bin/env $(LUA_EXE)|' bin/wxhw >$(DESTDIR)$(INSTALL_BIN)/wxhw
	chmod 0755 $(DESTDIR)$(INSTALL_BIN)/wxhw
endif

# A source rock that `luarocks install` builds offline: the checkout's files (what
# git tracks or would, not what it ignores) as wxhw-$(VERSION).tar.gz, packed with
# the rockspec into build/dist/*.src.rock.
dist:
	@rm -rf $(DIST) && mkdir -p $(DIST)
	@git ls-files -z --cached --others --exclude-standard -- . ':!fuzz/corpus' | xargs -0 sh -c 'for f; do [ -e "$$f" ] && printf "%s\0" "$$f"; done' sh | \
	  tar --null -T - --transform 's,^,wxhw-$(VERSION)/,' --owner=0 --group=0 --mtime=@0 -czf $(DIST)/wxhw-$(VERSION).tar.gz
	@sed 's|^\(   url = \)"\(.*\)"|\1"file://$(abspath $(DIST))/\2"|' $(ROCKSPEC) >$(DIST)/$(ROCKSPEC)
	@cd $(DIST) && luarocks --lua-version $(LUA_ABI) pack $(ROCKSPEC) >/dev/null
	@echo "  DIST $(DIST)/$(ROCKSPEC:.rockspec=.src.rock)"

lint: bootstrap-test
	luarocks --lua-version 5.4 lint $(ROCKSPEC)
	luacheck -q . bin/wxhw .busted

clean:
	rm -rf build
