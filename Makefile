# wxhw — build, test, bench, install.
#   make run             the main job (README), against the built-in emulator
#   make                 build build/5.4/wxhw/core.so against Lua 5.4
#   make LUA=luajit      build build/luajit/wxhw/core.so against LuaJIT 2.1 (OpenResty)
#   make test            busted specs under Lua 5.4 and, where present, LuaJIT
#   make check           specs against an ASan+UBSan build, C-heavy specs under valgrind
#   make bench | fuzz | install PREFIX=... | lint | clean

LUA      ?= 5.4
comma    := ,
PREFIX   ?= /usr/local
CC       ?= cc
SAN      ?=

ifneq ($(filter luajit 5.1,$(LUA)),)
  LUA_PC   := luajit
  LUA_ABI  := 5.1
else
  LUA_PC   := lua5.4
  LUA_ABI  := 5.4
endif

BUILD    := build/$(LUA)$(if $(SAN),-san)
CORE     := $(BUILD)/wxhw/core.so

PKGS     := libcrypto libcurl hiredis
WARN     := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wcast-qual \
            -Wmissing-prototypes -Wstrict-prototypes -Wvla -Wformat=2
OPT      := $(if $(SAN),-O1 -g -fno-omit-frame-pointer -fsanitize=address$(comma)undefined -fno-sanitize-recover=undefined,-O2 -g)
CFLAGS   ?=
CFLAGS   += -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden $(OPT) $(WARN) \
            $(shell pkg-config --cflags $(LUA_PC) $(PKGS))
LDFLAGS  += -shared $(if $(SAN),-fsanitize=address$(comma)undefined)
LIBS     := $(shell pkg-config --libs $(PKGS)) -lpthread

SRCS     := $(wildcard csrc/*.c) $(wildcard csrc/media/*.c)
OBJS     := $(SRCS:%.c=$(BUILD)/obj/%.o)
DEPS     := $(OBJS:.o=.d)

.PHONY: all test check bench fuzz install lint clean bootstrap demo run

all: $(CORE)

$(CORE): $(OBJS)
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $(OBJS) $(LIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

-include $(DEPS)

bootstrap:
	@bin/bootstrap

demo: bootstrap all
	@bin/wxhw demo

# The main job (README): provision the example factory list on every platform
# against the built-in emulator; the factory manifest lands in build/run/.
RUN_INPUT ?= examples/devices.csv
run: bootstrap all
	@mkdir -p build/run
	@bin/wxhw provision $(RUN_INPUT) --product Lamp --model-name LampModel --wmpf --groups --wecom \
	  --state-dir build/run/.wxhw --out build/run/manifest.csv $(RUN_ARGS)

test: bootstrap
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory LUA=luajit all
	@spec/run

check: bootstrap
	@$(MAKE) --no-print-directory SAN=1 all
	@spec/run --sanitize; a=$$?; spec/run --valgrind; b=$$?; [ $$a -eq 0 ] && [ $$b -eq 0 ]

bench: bootstrap all
	@bench/run

fuzz: bootstrap
	@$(MAKE) --no-print-directory -C fuzz

INSTALL_LIB   ?= $(PREFIX)/lib/lua/$(LUA_ABI)
INSTALL_SHARE ?= $(PREFIX)/share/lua/$(LUA_ABI)
INSTALL_BIN   ?= $(PREFIX)/bin

install: all
	install -d $(DESTDIR)$(INSTALL_LIB)/wxhw $(DESTDIR)$(INSTALL_SHARE)
	install -m 0755 $(CORE) $(DESTDIR)$(INSTALL_LIB)/wxhw/core.so
	cd lua && find wxhw -name '*.lua' -exec install -D -m 0644 {} $(DESTDIR)$(INSTALL_SHARE)/{} \;
	install -D -m 0755 bin/wxhw $(DESTDIR)$(INSTALL_BIN)/wxhw

lint:
	luarocks --lua-version 5.4 lint wxhw-0.1.0-1.rockspec

clean:
	rm -rf build
