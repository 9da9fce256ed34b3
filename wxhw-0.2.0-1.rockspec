rockspec_format = "3.0"
package = "wxhw"
version = "0.2.0-1"
source = {
   -- `make dist` writes this tarball and packs it with this rockspec into
   -- build/dist/wxhw-0.2.0-1.src.rock, which `luarocks install` builds offline.
   url = "wxhw-0.2.0.tar.gz",
   dir = "wxhw-0.2.0",
}
description = {
   summary = "WeChat, WeCom and WeChat Pay for smart-hardware back ends",
   detailed = [[
wxhw gives hardware vendors one library for the Tencent systems their devices
meet: Mini Program hardware access and VoIP calls, WMPF runtime management,
WeCom smart hardware, and WeChat Pay IoT device management. A C core (OpenSSL,
libcurl) provides signing, crypto, HTTP, token storage and media packing; Lua on
top runs provisioning, call orchestration and pagination.]],
   license = "MIT",
   labels = { "wechat", "wecom", "wechatpay", "iot", "openresty" },
}
dependencies = {
   "lua >= 5.1, < 5.5",
   "lua-cjson",
   "luasocket", -- eight modules need `socket` when they load
}
external_dependencies = {
   OPENSSL = { header = "openssl/evp.h" },
   CURL = { library = "curl" }, -- header sits in a multiarch dir on Debian
   HIREDIS = { header = "hiredis/hiredis.h" },
}
build = {
   -- The Makefile is the single description of the build (sources are found by
   -- wildcard, library flags by pkg-config). LuaRocks' own variables choose the
   -- Lua it builds for: LUA_INCDIR (5.4, 5.1/LuaJIT or OpenResty's headers), the
   -- compiler, CFLAGS and LIBFLAG; the Makefile reads the ABI from that lua.h.
   type = "make",
   build_variables = {
      LUA_INCDIR = "$(LUA_INCDIR)",
      CC = "$(CC)",
      CFLAGS = "$(CFLAGS)",
      LIBFLAG = "$(LIBFLAG)",
   },
   install_variables = {
      LUA_INCDIR = "$(LUA_INCDIR)",
      CC = "$(CC)",
      CFLAGS = "$(CFLAGS)",
      LIBFLAG = "$(LIBFLAG)",
      INSTALL_LIB = "$(LIBDIR)",
      INSTALL_SHARE = "$(LUADIR)",
      INSTALL_BIN = "$(BINDIR)",
   },
}
test = {
   -- builds the checkout's core, then spec/run (Lua 5.4, and LuaJIT where built);
   -- `luarocks test -- spec/foo_spec.lua` runs one file
   type = "command",
   command = "make --no-print-directory all && spec/run",
}
