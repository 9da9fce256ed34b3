rockspec_format = "3.0"
package = "wxhw"
version = "0.1.0-1"
source = {
   url = "git+file:///work/main",
   tag = "v0.1.0",
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
}
external_dependencies = {
   OPENSSL = { header = "openssl/evp.h" },
   CURL = { library = "curl" }, -- header sits in a multiarch dir on Debian
   HIREDIS = { header = "hiredis/hiredis.h" },
}
build = {
   -- The Makefile is the single description of the build (sources are found by
   -- wildcard, flags by pkg-config), so the rock and `make` build the same thing.
   type = "make",
   build_variables = {
      LUA = "$(LUA_VERSION)",
   },
   install_variables = {
      LUA = "$(LUA_VERSION)",
      INSTALL_LIB = "$(LIBDIR)",
      INSTALL_SHARE = "$(LUADIR)",
      INSTALL_BIN = "$(BINDIR)",
   },
}
