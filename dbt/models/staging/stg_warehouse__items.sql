with

source as (

    select * from {{ source('warehouse', 'items') }}

),

renamed as (

    select
        cast(item_id as bigint) as item_id,
        cast(category as bigint) as category,
        cast(brand as bigint) as brand,
        cast(gender as bigint) as gender,
        cast(price_level as bigint) as price_level,
        cast(age_level as bigint) as age_level,
        cast(bc_type as bigint) as bc_type,
        cast(ctr_score as double) as ctr_score,
        cast(cvr_score as double) as cvr_score,
        cast(ds as date) as snapshot_ds

    from source

)

select * from renamed
