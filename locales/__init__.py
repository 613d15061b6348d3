"""The gettext catalogs (English ids, German default), shipped inside the installed package."""
