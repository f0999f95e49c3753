"""A student's data from arrival to deletion: who accessed it (access_report), deletion on
request and by retention (purge, retention), a district leaving (offboard)."""
