mod driver_tests;
mod flap_tests;
mod forged_tests;
mod sim;
mod swim_tests;
mod wire_tests;
