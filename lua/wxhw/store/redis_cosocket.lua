-- Moved: wxhw.redis (its Cosocket class); this name is kept for one release.
return require("wxhw.redis").Cosocket
