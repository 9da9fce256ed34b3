return require "wxhw.media.frame"
