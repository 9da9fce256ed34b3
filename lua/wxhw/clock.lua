--- Clocks: `now()` wall seconds (fractional), `monotonic()` for intervals,
-- `sleep(s)` (blocking: not for nginx workers). C in csrc/clock.c.
return require("wxhw.core").clock
