return require "wxhw.transport.mux"
