"""The commands beside `sgpipe run`: convert, reshard, export, stats, report, inspect (and the record
renderer it shares with the report) and parse."""
