//! `kubectl ferrolb migrate`: MetalLB configuration in, ferrolb configuration out.
