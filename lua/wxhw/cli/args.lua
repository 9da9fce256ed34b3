--- Command-line options shared by every wxhw subcommand: `--name value`,
-- `--name=value`, boolean flags and `-h`.
local M = {}

--- spec.flags: set of boolean options; spec.values: set of options that take
-- a value (nil: every other option takes one). Returns options, positionals
-- or nil, message.
function M.parse(argv, spec)
  local o, pos = {}, {}
  local flags, values = spec.flags or {}, spec.values
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local k, v = a:match("^%-%-([%w%-]+)=(.*)$")
    if not k then k = a:match("^%-%-([%w%-]+)$") end
    if k then
      if flags[k] then
        if v ~= nil then return nil, "--" .. k .. " takes no value" end
        o[k] = true
      elseif values == nil or values[k] then
        if v == nil then i = i + 1; v = argv[i] end
        if v == nil then return nil, "--" .. k .. " needs a value" end
        o[k] = v
      else
        return nil, "unknown option --" .. k
      end
    elseif a == "-h" then
      o.help = true
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return o, pos
end

--- Checks that o[name] is an integer in min..max (max may be nil) and stores
-- it as a number; absent options get `default`. Returns true | nil, message.
function M.integer(o, name, min, max, default)
  if o[name] == nil then o[name] = default; return true end
  local n = tonumber(o[name])
  if not n or n ~= math.floor(n) or n < min or (max and n > max) then
    return nil, "--" .. name .. " must be an integer " .. (max and ("in " .. min .. ".." .. max) or (">= " .. min))
  end
  o[name] = math.floor(n)
  return true
end

--- Applies M.integer to rows { name, min, max, default }; stops at the first error.
function M.integers(o, rows)
  for _, r in ipairs(rows) do
    local ok, err = M.integer(o, r[1], r[2], r[3], r[4])
    if not ok then return nil, err end
  end
  return true
end

--- The command (an argv table) that runs this wxhw command line again: the
-- same interpreter with its options (a LuaRocks wrapper's `-e` setting the
-- paths) and the same script, so a child such as the built-in emulator loads
-- the same modules from a checkout, `make install` or a rock. lua54: run the
-- script under lua5.4 instead (it then finds the Lua 5.4 install next to
-- this one). Extra arguments are appended.
function M.self_argv(lua54, ...)
  local argv = {}
  if lua54 and rawget(_G, "jit") then
    argv = { "lua5.4", arg[0] }
  else
    local first = 0
    while arg and arg[first - 1] ~= nil do first = first - 1 end
    for i = first, 0 do argv[#argv + 1] = arg[i] end
    if first == 0 then table.insert(argv, 1, rawget(_G, "jit") and "luajit" or "lua5.4") end
  end
  for i = 1, select("#", ...) do argv[#argv + 1] = tostring((select(i, ...))) end
  return argv
end

return M
