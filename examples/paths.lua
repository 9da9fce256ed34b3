--- Puts the checkout this examples/ directory belongs to first on the module
-- paths (its lua/ and, after `make`, the core built for this runtime), so an
-- example runs from any directory. Returns { root =, dir = }.
local root = (arg and arg[0] or ""):match("^(.-)/?examples/[^/]*$")
if not root or root == "" then root = "." end
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/" .. (rawget(_G, "jit") and "luajit" or "5.4") .. "/?.so;" .. package.cpath

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- The directory an example writes into: PATH when given, else
-- build/examples/NAME of the checkout (`make clean` removes it); created.
local function dir(name, path)
  path = path or (root .. "/build/examples/" .. name)
  local ok = os.execute("mkdir -p " .. quote(path))
  if ok ~= true and ok ~= 0 then error("cannot create the directory " .. path) end
  return path
end

return { root = root, dir = dir }
