<?php
define( 'DB_NAME', 'wordpress' );
define( 'DB_USER', 'wp_prod' );
define( 'DB_PASSWORD', '3qsCzqy0ne3gxzuS_E' );
define( 'DB_HOST', 'mysql.internal' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'AUTH_KEY', 'qEJ?G)CJh,2oFCy}9X2S<,QdsVDTv_|r:5L#)]3CuZI6o+5V{{u53:Idd]4}N[V-' );
define( 'SECURE_AUTH_KEY', 'X,-mX!zI,4wzJA#d%1z5C,#Vw3|mvG:QF.dRmj>%3P_Z^#m2!Q0QyM{g)*dVr%<G' );
define( 'LOGGED_IN_KEY', '9cECUzO1C|KJt1zgB.5<kvpqr83<(qp!mn*7]2}M:Th-Ql=d8=#lf^j)RHiAZQ}%' );
define( 'NONCE_KEY', '?pGk4{jN#x8gw-#.S>xARRBLDmUU.JNZ|HWOHTXek;F+wXS~?thS,h]0#9)6F~Po' );
$table_prefix = 'wp_';
