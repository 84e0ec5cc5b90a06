mod driver_tests;
mod flap_tests;
mod forged_tests;
mod scale_tests;
mod sim;
mod swim_tests;
mod wire_tests;
